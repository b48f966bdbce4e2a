//! Node keys: an ed25519 signing key that is also the node's libp2p identity.

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::Path;

use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::suite::{Signature, Signer};

/// First token of a key file, so a stray file is never mistaken for a key.
const KEY_FILE_TAG: &str = "bftime-ed25519-secret-v1";

/// Why a key could not be generated, saved or loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read key file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write key file {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "key file {path} is not a bftime key (expected one line `{KEY_FILE_TAG} <64 hex digits>`; create one with `bftime keygen`)"
    )]
    Format { path: String },
    #[error("key file {path} already exists; refusing to overwrite a node identity")]
    Exists { path: String },
    #[error("invalid public key {text:?}: {reason}")]
    PublicKey { text: String, reason: String },
}

/// A member's public key: verifies its signatures and names it on the network. Holds the
/// point decompressed once, in the forms ZIP-215 verification uses (spec §2.7): ed25519-zebra's
/// key for single checks and the point itself for batches ([`crate::batch`]), so no check
/// decompresses it again.
#[derive(Clone, Copy)]
pub struct PublicKey {
    zip215: ed25519_zebra::VerificationKey,
    point: curve25519_dalek::EdwardsPoint,
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.to_bytes() == other.to_bytes()
    }
}

impl Eq for PublicKey {}

impl std::hash::Hash for PublicKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.to_bytes().hash(state);
    }
}

impl PublicKey {
    /// Parses 32 raw bytes. Refuses what ZIP-215 verification would otherwise let
    /// through (spec §2.7): a non-canonical encoding (a second spelling of one key, so one
    /// member could appear twice), a small-order point (a "weak" key, under which
    /// signatures that prove nothing verify) and a point with a small-order component
    /// (no honest key has one, and cofactored and cofactorless verifiers, such as other
    /// ed25519 tools, disagree about its signatures).
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, KeyError> {
        let refuse = |reason: String| KeyError::PublicKey {
            text: hex::encode(bytes),
            reason,
        };
        let key = VerifyingKey::from_bytes(bytes).map_err(|e| refuse(e.to_string()))?;
        let point = key.to_edwards();
        if point.compress().to_bytes() != *bytes {
            return Err(refuse("not the canonical encoding of its point".into()));
        }
        if key.is_weak() {
            return Err(refuse(
                "a small-order (weak) point, under which forged signatures verify".into(),
            ));
        }
        if !point.is_torsion_free() {
            return Err(refuse(
                "a point with a small-order component, which no honest key has".into(),
            ));
        }
        let zip215 =
            ed25519_zebra::VerificationKey::try_from(*bytes).map_err(|e| refuse(e.to_string()))?;
        Ok(PublicKey { zip215, point })
    }

    /// Parses the 64-hex-digit form used in cluster files.
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut bytes).map_err(|e| KeyError::PublicKey {
            text: text.to_owned(),
            reason: format!("expected 64 hex digits: {e}"),
        })?;
        Self::from_bytes(&bytes)
    }

    pub fn to_bytes(&self) -> [u8; 32] {
        self.zip215.into()
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.to_bytes())
    }

    pub(crate) fn zip215(&self) -> &ed25519_zebra::VerificationKey {
        &self.zip215
    }

    pub(crate) fn point(&self) -> &curve25519_dalek::EdwardsPoint {
        &self.point
    }

    /// The libp2p identity of this key: the node's network identity is its signing key.
    pub fn to_peer_id(&self) -> libp2p_identity::PeerId {
        self.to_libp2p().to_peer_id()
    }

    /// The same key as a libp2p public key (for Noise and identify).
    pub fn to_libp2p(&self) -> libp2p_identity::PublicKey {
        // Both sides are 32-byte compressed Edwards points, already validated above,
        // so this conversion cannot fail for a key we constructed.
        match libp2p_identity::ed25519::PublicKey::try_from_bytes(&self.to_bytes()) {
            Ok(pk) => libp2p_identity::PublicKey::from(pk),
            Err(_) => unreachable!("a validated ed25519 key is a valid libp2p ed25519 key"),
        }
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", &self.to_hex()[..16])
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for PublicKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&self.to_hex())
        } else {
            self.to_bytes().serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let text = String::deserialize(d)?;
            PublicKey::from_hex(&text).map_err(serde::de::Error::custom)
        } else {
            let bytes = <[u8; 32]>::deserialize(d)?;
            PublicKey::from_bytes(&bytes).map_err(serde::de::Error::custom)
        }
    }
}

/// A node's secret signing key. Not `Clone` on purpose: one identity, one owner.
pub struct NodeKey {
    secret: SigningKey,
    public: PublicKey,
}

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeKey")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// A key loaded from disk, with what the loader noticed about the file.
#[derive(Debug)]
pub struct LoadedKey {
    pub key: NodeKey,
    /// The file is readable by group or others (mode & 0o077 != 0): the caller should warn.
    pub permissions_too_open: bool,
}

impl NodeKey {
    /// A fresh key from a cryptographically secure RNG supplied by the caller.
    pub fn generate<R: rand_core::CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        Self::from_seed(&seed)
    }

    /// The key with this 32-byte secret seed. Deterministic: tests and the simulator use it.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let secret = SigningKey::from_bytes(seed);
        // A key derived from a seed is a canonical point of large order (a scalar
        // multiple of the base point), which `from_bytes` accepts.
        let public = match PublicKey::from_bytes(&secret.verifying_key().to_bytes()) {
            Ok(public) => public,
            Err(e) => unreachable!("an ed25519 key made from a seed is a valid member key: {e}"),
        };
        NodeKey { secret, public }
    }

    pub fn public_key(&self) -> PublicKey {
        self.public
    }

    /// Writes the key to `path` with mode 0600, refusing to overwrite an existing file.
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        let shown = path.display().to_string();
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::AlreadyExists {
                KeyError::Exists {
                    path: shown.clone(),
                }
            } else {
                KeyError::Write {
                    path: shown.clone(),
                    source,
                }
            }
        })?;
        let text = format!("{KEY_FILE_TAG} {}\n", hex::encode(self.secret.to_bytes()));
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|source| KeyError::Write {
                path: shown,
                source,
            })
    }

    /// Reads a key written by [`NodeKey::save`]. A group/world-readable file still loads,
    /// but the result says so and a warning is logged: the operator should `chmod 600` it.
    pub fn load(path: &Path) -> Result<LoadedKey, KeyError> {
        let shown = path.display().to_string();
        let text = fs::read_to_string(path).map_err(|source| KeyError::Read {
            path: shown.clone(),
            source,
        })?;
        let mut parts = text.split_whitespace();
        let (Some(KEY_FILE_TAG), Some(hex_seed), None) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(KeyError::Format { path: shown });
        };
        let mut seed = [0u8; 32];
        hex::decode_to_slice(hex_seed, &mut seed).map_err(|_| KeyError::Format {
            path: shown.clone(),
        })?;
        let permissions_too_open = permissions_too_open(path);
        if permissions_too_open {
            tracing::warn!(path = %shown, "key file is readable by group or others; run `chmod 600` on it");
        }
        Ok(LoadedKey {
            key: Self::from_seed(&seed),
            permissions_too_open,
        })
    }

    /// The same key as a libp2p keypair, so the swarm identity equals the signing identity.
    pub fn to_libp2p_keypair(&self) -> libp2p_identity::Keypair {
        let mut seed = self.secret.to_bytes();
        match libp2p_identity::Keypair::ed25519_from_bytes(&mut seed) {
            Ok(kp) => kp,
            Err(_) => unreachable!("a 32-byte ed25519 seed is always a valid libp2p keypair"),
        }
    }
}

impl Signer for NodeKey {
    fn public_key(&self) -> PublicKey {
        self.public
    }

    fn sign(&self, domain: &[u8], body: &[u8]) -> Signature {
        use ed25519_dalek::Signer as _;
        Signature(
            self.secret
                .sign(&crate::suite::domain_message(domain, body))
                .to_bytes(),
        )
    }
}

#[cfg(unix)]
fn permissions_too_open(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o077 != 0)
        .unwrap_or(false)
}

#[cfg(not(unix))]
fn permissions_too_open(_path: &Path) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_load_roundtrip_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        let key = NodeKey::from_seed(&[7; 32]);
        key.save(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let loaded = NodeKey::load(&path).unwrap();
        assert!(!loaded.permissions_too_open);
        assert_eq!(loaded.key.public_key(), key.public_key());
        assert!(matches!(key.save(&path), Err(KeyError::Exists { .. })));
    }

    #[cfg(unix)]
    #[test]
    fn world_readable_key_loads_with_warning_flag() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        NodeKey::from_seed(&[1; 32]).save(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(NodeKey::load(&path).unwrap().permissions_too_open);
    }

    #[test]
    fn garbage_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        fs::write(&path, "hello world\n").unwrap();
        assert!(matches!(NodeKey::load(&path), Err(KeyError::Format { .. })));
        fs::write(&path, format!("{KEY_FILE_TAG} abcd\n")).unwrap();
        assert!(matches!(NodeKey::load(&path), Err(KeyError::Format { .. })));
    }

    #[test]
    fn peer_id_matches_libp2p_keypair() {
        let key = NodeKey::from_seed(&[9; 32]);
        let kp = key.to_libp2p_keypair();
        assert_eq!(kp.public().to_peer_id(), key.public_key().to_peer_id());
        assert!(
            key.public_key()
                .to_peer_id()
                .to_string()
                .starts_with("12D3KooW")
        );
    }

    #[test]
    fn public_key_hex_roundtrip_and_errors() {
        let pk = NodeKey::from_seed(&[3; 32]).public_key();
        assert_eq!(PublicKey::from_hex(&pk.to_hex()).unwrap(), pk);
        assert!(PublicKey::from_hex("zz").is_err());
        let json = serde_json_like(&pk);
        assert_eq!(json, pk.to_hex());
    }

    fn serde_json_like(pk: &PublicKey) -> String {
        // postcard is not human readable: the binary form is the raw 32 bytes.
        let bytes = postcard::to_allocvec(pk).unwrap();
        assert_eq!(bytes.len(), 32);
        let back: PublicKey = postcard::from_bytes(&bytes).unwrap();
        back.to_hex()
    }
}
