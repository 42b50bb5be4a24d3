//! Reading GGUF files: typed access to metadata, and tensors as candle `QTensor`s.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::quantized::QTensor;
use candle_core::Device;

use crate::error::{EngineError, Result};

/// A GGUF file opened for reading: its metadata, and a reader for its tensors.
pub struct GgufFile {
    pub metadata: Metadata,
    content: Content,
    reader: BufReader<File>,
}

impl GgufFile {
    pub fn open(path: &Path) -> Result<Self> {
        let file =
            File::open(path).map_err(|e| EngineError::Model(format!("{}: {e}", path.display())))?;
        let mut reader = BufReader::new(file);
        let content = Content::read(&mut reader)
            .map_err(|e| EngineError::Model(format!("{}: not a GGUF file: {e}", path.display())))?;
        let metadata = Metadata(content.metadata.clone());
        Ok(Self {
            metadata,
            content,
            reader,
        })
    }

    pub fn has_tensor(&self, name: &str) -> bool {
        self.content.tensor_infos.contains_key(name)
    }

    /// Reads one tensor (quantized or not) into memory.
    pub fn tensor(&mut self, name: &str) -> Result<QTensor> {
        self.content
            .tensor(&mut self.reader, name, &Device::Cpu)
            .map_err(|e| EngineError::Model(format!("tensor `{name}`: {e}")))
    }
}

/// GGUF key/value metadata with typed getters whose errors name the key.
#[derive(Clone, Debug, Default)]
pub struct Metadata(pub HashMap<String, Value>);

impl Metadata {
    fn get(&self, key: &str) -> Result<&Value> {
        self.0
            .get(key)
            .ok_or_else(|| EngineError::Model(format!("GGUF metadata `{key}` is missing")))
    }

    fn typed<T>(&self, key: &str, f: impl FnOnce(&Value) -> candle_core::Result<T>) -> Result<T> {
        f(self.get(key)?).map_err(|e| EngineError::Model(format!("GGUF metadata `{key}`: {e}")))
    }

    pub fn string(&self, key: &str) -> Result<String> {
        self.typed(key, |v| v.to_string().cloned())
    }

    pub fn u32(&self, key: &str) -> Result<u32> {
        // Writers disagree on integer widths; accept any that fits.
        match self.get(key)? {
            Value::U8(v) => Ok(*v as u32),
            Value::U16(v) => Ok(*v as u32),
            Value::U32(v) => Ok(*v),
            Value::U64(v) => u32::try_from(*v)
                .map_err(|_| EngineError::Model(format!("GGUF metadata `{key}` out of range"))),
            Value::I32(v) => u32::try_from(*v)
                .map_err(|_| EngineError::Model(format!("GGUF metadata `{key}` out of range"))),
            Value::I64(v) => u32::try_from(*v)
                .map_err(|_| EngineError::Model(format!("GGUF metadata `{key}` out of range"))),
            other => Err(EngineError::Model(format!(
                "GGUF metadata `{key}`: expected an integer, found {other:?}"
            ))),
        }
    }

    pub fn f32(&self, key: &str) -> Result<f32> {
        match self.get(key)? {
            Value::F64(v) => Ok(*v as f32),
            v => v
                .to_f32()
                .map_err(|e| EngineError::Model(format!("GGUF metadata `{key}`: {e}"))),
        }
    }

    pub fn bool(&self, key: &str) -> Result<bool> {
        self.typed(key, |v| v.to_bool())
    }

    pub fn string_array(&self, key: &str) -> Result<Vec<String>> {
        let values = self.typed(key, |v| v.to_vec().cloned())?;
        values
            .iter()
            .map(|v| {
                v.to_string()
                    .cloned()
                    .map_err(|e| EngineError::Model(format!("GGUF metadata `{key}`: {e}")))
            })
            .collect()
    }

    pub fn i32_array(&self, key: &str) -> Result<Vec<i32>> {
        let values = self.typed(key, |v| v.to_vec().cloned())?;
        values
            .iter()
            .map(|v| match v {
                Value::I32(x) => Ok(*x),
                Value::U32(x) => Ok(*x as i32),
                Value::U8(x) => Ok(*x as i32),
                Value::I8(x) => Ok(*x as i32),
                other => Err(EngineError::Model(format!(
                    "GGUF metadata `{key}`: expected integers, found {other:?}"
                ))),
            })
            .collect()
    }
}
