//! Reading GGUF files: typed access to metadata, and tensors as candle `QTensor`s.
//!
//! A GGUF file may come from anyone (a private deployment's upload), so reading one must end
//! in an error, never a panic or an allocation the file's size does not back. candle's reader
//! bounds every count and length by the bytes left; what it leaves open is checked here: a
//! `general.alignment` of 0 (candle divides by it) and a tensor shape whose element count
//! overflows.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::quantized::QTensor;
use candle_core::Device;

use crate::error::{EngineError, Result};

/// A GGUF file opened for reading: its metadata, and a reader for its tensors. `R` is any
/// seekable byte source (a file, or bytes in memory).
pub struct GgufFile<R = BufReader<File>> {
    pub metadata: Metadata,
    content: Content,
    reader: R,
}

impl GgufFile {
    pub fn open(path: &Path) -> Result<Self> {
        let file =
            File::open(path).map_err(|e| EngineError::Model(format!("{}: {e}", path.display())))?;
        Self::from_reader(BufReader::new(file), &path.display().to_string())
    }
}

impl<R: Read + Seek> GgufFile<R> {
    /// Reads the header of the GGUF file in `reader`; `origin` names it in errors.
    pub fn from_reader(mut reader: R, origin: &str) -> Result<Self> {
        let not_gguf = |e: &dyn std::fmt::Display| {
            EngineError::Model(format!("{origin}: not a GGUF file: {e}"))
        };
        let start = reader.stream_position().map_err(|e| not_gguf(&e))?;
        if header_alignment_is_zero(&mut reader).unwrap_or(false) {
            return Err(not_gguf(&"`general.alignment` is 0"));
        }
        reader
            .seek(SeekFrom::Start(start))
            .map_err(|e| not_gguf(&e))?;
        let content = Content::read(&mut reader).map_err(|e| not_gguf(&e))?;
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

    /// The names of the tensors the file declares.
    pub fn tensor_names(&self) -> impl Iterator<Item = &str> {
        self.content.tensor_infos.keys().map(String::as_str)
    }

    /// Reads one tensor (quantized or not) into memory.
    pub fn tensor(&mut self, name: &str) -> Result<QTensor> {
        if let Some(info) = self.content.tensor_infos.get(name) {
            // candle multiplies the dimensions unchecked (a panic, or a wrapped size).
            let elems = info
                .shape
                .dims()
                .iter()
                .try_fold(1usize, |n, &d| n.checked_mul(d));
            let bytes = elems.and_then(|n| {
                (n / info.ggml_dtype.block_size()).checked_mul(info.ggml_dtype.type_size())
            });
            if bytes.is_none() {
                return Err(EngineError::Model(format!(
                    "tensor `{name}`: its shape {:?} is too large",
                    info.shape.dims()
                )));
            }
            // candle views an empty buffer (a dangling, unaligned pointer) as a slice of its
            // blocks: undefined behaviour. No weight is empty anyway.
            if elems == Some(0) {
                return Err(EngineError::Model(format!(
                    "tensor `{name}`: its shape {:?} has no elements",
                    info.shape.dims()
                )));
            }
        }
        self.content
            .tensor(&mut self.reader, name, &Device::Cpu)
            .map_err(|e| EngineError::Model(format!("tensor `{name}`: {e}")))
    }
}

/// Whether the header's metadata sets `general.alignment` to 0, which candle's reader divides
/// by. Walks the key/value section the way candle reads it; `Err` (the header is malformed)
/// is left for candle's reader to report.
fn header_alignment_is_zero<R: Read>(reader: &mut R) -> std::io::Result<bool> {
    let magic = read_u32(reader)?;
    if magic != 0x4655_4747 && magic != 0x4747_5546 {
        return Ok(false);
    }
    let wide = match read_u32(reader)? {
        1 => false,
        2 | 3 => true,
        _ => return Ok(false),
    };
    let _tensor_count = read_len(reader, wide)?;
    let kv_count = read_len(reader, wide)?;
    let mut zero = false;
    for _ in 0..kv_count {
        let key_len = read_len(reader, wide)?;
        let key_is_alignment = key_len == ALIGNMENT_KEY.len() as u64 && {
            let mut key = [0u8; ALIGNMENT_KEY.len()];
            reader.read_exact(&mut key)?;
            key == *ALIGNMENT_KEY
        };
        if key_len != ALIGNMENT_KEY.len() as u64 {
            skip(reader, key_len)?;
        }
        let value_type = read_u32(reader)?;
        if key_is_alignment {
            // The integer types candle takes the alignment from (others: its default).
            let value = match value_type {
                0 | 1 => Some(read_n(reader, 1)?),
                2 | 3 => Some(read_n(reader, 2)?),
                4 | 5 => Some(read_n(reader, 4)?),
                _ => None,
            };
            match value {
                Some(v) => {
                    zero = v == 0;
                    continue;
                }
                None => zero = false,
            }
        }
        skip_value(reader, value_type, wide, 0)?;
    }
    Ok(zero)
}

const ALIGNMENT_KEY: &[u8; 17] = b"general.alignment";

fn read_u32<R: Read>(reader: &mut R) -> std::io::Result<u32> {
    let mut b = [0u8; 4];
    reader.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}

fn read_n<R: Read>(reader: &mut R, n: usize) -> std::io::Result<u64> {
    let mut b = [0u8; 8];
    reader.read_exact(&mut b[..n])?;
    Ok(u64::from_le_bytes(b))
}

fn read_len<R: Read>(reader: &mut R, wide: bool) -> std::io::Result<u64> {
    read_n(reader, if wide { 8 } else { 4 })
}

/// Skips `n` bytes; an error when fewer are left.
fn skip<R: Read>(reader: &mut R, n: u64) -> std::io::Result<()> {
    let skipped = std::io::copy(&mut reader.by_ref().take(n), &mut std::io::sink())?;
    if skipped < n {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

fn skip_value<R: Read>(
    reader: &mut R,
    value_type: u32,
    wide: bool,
    depth: usize,
) -> std::io::Result<()> {
    let scalar = |t: u32| match t {
        0 | 1 | 7 => Some(1u64),
        2 | 3 => Some(2),
        4..=6 => Some(4),
        10..=12 => Some(8),
        _ => None,
    };
    let bad = || std::io::Error::from(std::io::ErrorKind::InvalidData);
    if let Some(size) = scalar(value_type) {
        return skip(reader, size);
    }
    match value_type {
        8 => {
            let len = read_len(reader, wide)?;
            skip(reader, len)
        }
        9 if depth < 64 => {
            let item_type = read_u32(reader)?;
            let len = read_len(reader, wide)?;
            match scalar(item_type) {
                Some(size) => skip(reader, len.checked_mul(size).ok_or_else(bad)?),
                None => {
                    // Every item takes at least one byte, so a hostile `len` ends at EOF.
                    for _ in 0..len {
                        skip_value(reader, item_type, wide, depth + 1)?;
                    }
                    Ok(())
                }
            }
        }
        _ => Err(bad()),
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

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    /// A GGUF v3 file: `kvs` (key, type, value bytes), then `tensors` (name, dims, ggml type,
    /// offset), then the data section at 32-byte alignment.
    fn gguf(
        tensor_count: u64,
        kvs: &[(&str, u32, Vec<u8>)],
        tensors: &[(&str, &[u64], u32)],
        data: &[u8],
    ) -> Vec<u8> {
        let mut b = b"GGUF".to_vec();
        b.extend(3u32.to_le_bytes());
        b.extend(tensor_count.to_le_bytes());
        b.extend((kvs.len() as u64).to_le_bytes());
        let string = |b: &mut Vec<u8>, s: &str| {
            b.extend((s.len() as u64).to_le_bytes());
            b.extend(s.as_bytes());
        };
        for (key, kind, value) in kvs {
            string(&mut b, key);
            b.extend(kind.to_le_bytes());
            b.extend(value);
        }
        for (name, dims, kind) in tensors {
            string(&mut b, name);
            b.extend((dims.len() as u32).to_le_bytes());
            for d in *dims {
                b.extend(d.to_le_bytes());
            }
            b.extend(kind.to_le_bytes());
            b.extend(0u64.to_le_bytes());
        }
        b.resize(b.len().div_ceil(32) * 32, 0);
        b.extend(data);
        b
    }

    fn open(bytes: Vec<u8>) -> Result<GgufFile<Cursor<Vec<u8>>>> {
        GgufFile::from_reader(Cursor::new(bytes), "test.gguf")
    }

    #[test]
    fn reads_metadata_and_tensors_from_memory() {
        let name = (
            "general.name",
            8,
            [5u64.to_le_bytes().to_vec(), b"tiny!".to_vec()].concat(),
        );
        let data: Vec<u8> = [1.0f32, 2.0].iter().flat_map(|x| x.to_le_bytes()).collect();
        let dims: &[u64] = &[2];
        let mut file = open(gguf(1, &[name], &[("w", dims, 0)], &data)).unwrap();
        assert_eq!(file.metadata.string("general.name").unwrap(), "tiny!");
        assert_eq!(file.tensor_names().collect::<Vec<_>>(), ["w"]);
        let w = file.tensor("w").unwrap().dequantize(&Device::Cpu).unwrap();
        assert_eq!(w.to_vec1::<f32>().unwrap(), [1.0, 2.0]);
        assert!(file.tensor("missing").is_err());
    }

    #[test]
    fn hostile_counts_are_errors_not_allocations() {
        for count in [1u64 << 60, u64::MAX, 1 << 29] {
            assert!(open(gguf(count, &[], &[], &[])).is_err(), "{count}");
        }
        // A string or an array longer than the file.
        let long_string = ("k", 8, (1u64 << 60).to_le_bytes().to_vec());
        assert!(open(gguf(0, &[long_string], &[], &[])).is_err());
        let long_array = (
            "k",
            9,
            [
                4u32.to_le_bytes().to_vec(),
                (1u64 << 60).to_le_bytes().to_vec(),
            ]
            .concat(),
        );
        assert!(open(gguf(0, &[long_array], &[], &[])).is_err());
    }

    #[test]
    fn zero_alignment_is_an_error_not_a_panic() {
        for (kind, value) in [
            (4u32, 0u32.to_le_bytes().to_vec()),
            (0, vec![0]),
            (3, vec![0, 0]),
        ] {
            let err = open(gguf(0, &[("general.alignment", kind, value)], &[], &[]))
                .err()
                .expect("refused");
            assert!(err.to_string().contains("general.alignment"), "{err}");
        }
        // A usable alignment, and a zero one that a later entry replaces, are fine.
        let align = |v: u32| ("general.alignment", 4, v.to_le_bytes().to_vec());
        assert!(open(gguf(0, &[align(64)], &[], &[])).is_ok());
        assert!(open(gguf(0, &[align(0), align(16)], &[], &[])).is_ok());
    }

    #[test]
    fn a_shape_too_large_to_count_is_an_error_not_a_panic() {
        let huge: &[u64] = &[1 << 32, 1 << 32, 1 << 32, 1 << 32];
        let mut file = open(gguf(1, &[], &[("w", huge, 0)], &[0; 64])).unwrap();
        let err = file.tensor("w").unwrap_err();
        assert!(err.to_string().contains("too large"), "{err}");
        // Large but countable: refused because the file does not hold it.
        let large: &[u64] = &[1 << 40];
        let mut file = open(gguf(1, &[], &[("w", large, 0)], &[0; 64])).unwrap();
        assert!(file.tensor("w").is_err());
    }

    #[test]
    fn an_empty_tensor_is_an_error() {
        // Found by the `gguf` fuzz target: candle turned the empty buffer's dangling pointer
        // into a slice of f32 (a failed alignment precondition, undefined behaviour).
        for dims in [&[0u64][..], &[32, 0][..], &[0, 0, 0, 0][..]] {
            for kind in [0u32, 1, 3, 8] {
                let mut file = open(gguf(1, &[], &[("w", dims, kind)], &[0; 64])).unwrap();
                let err = file.tensor("w").unwrap_err();
                assert!(err.to_string().contains("no elements"), "{err}");
            }
        }
    }
}
