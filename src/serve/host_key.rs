//! The server's ed25519 host key: made on first start, kept in the data dir, the same ever after so
//! that clients' known_hosts entries stay true.

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use russh::keys::PrivateKey;
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::ssh_key::{HashAlg, LineEnding};

/// The host key at `path`, made (mode 0600, in a directory made for it) if there is none yet.
/// Answers the key and whether it was made now.
pub fn load_or_create(path: &Path) -> Result<(PrivateKey, bool), String> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let key = PrivateKey::from_openssh(text.as_bytes())
                .map_err(|e| format!("cannot read the host key {}: {e}", path.display()))?;
            Ok((key, false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((create(path)?, true)),
        Err(e) => Err(format!("cannot read the host key {}: {e}", path.display())),
    }
}

/// `SHA256:…`, as `ssh-keygen -lf` and a connecting client print it.
pub fn fingerprint(key: &PrivateKey) -> String {
    key.public_key().fingerprint(HashAlg::Sha256).to_string()
}

fn create(path: &Path) -> Result<PrivateKey, String> {
    let cannot =
        |e: &dyn std::fmt::Display| format!("cannot create the host key {}: {e}", path.display());
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| cannot(&e))?;
    }
    let mut seed = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut seed))
        .map_err(|e| cannot(&e))?;
    let mut key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
    key.set_comment("ospdeck serve host key");
    let text = key.to_openssh(LineEnding::LF).map_err(|e| cannot(&e))?;
    // create_new: two servers starting at once must not each write a different key.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| cannot(&e))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| cannot(&e))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_key_is_made_once_private_and_kept() -> Result<(), String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = dir.path().join("keys/ssh_host_ed25519_key");
        let (made, created) = load_or_create(&path)?;
        assert!(created);
        let mode = std::fs::metadata(&path).map_err(|e| e.to_string())?;
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
            0o600
        );
        let (again, created) = load_or_create(&path)?;
        assert!(!created);
        assert_eq!(fingerprint(&made), fingerprint(&again));
        assert!(fingerprint(&made).starts_with("SHA256:"));
        std::fs::write(&path, "not a key").map_err(|e| e.to_string())?;
        assert!(load_or_create(&path).is_err_and(|e| e.contains("cannot read the host key")));
        Ok(())
    }
}
