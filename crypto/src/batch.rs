//! ed25519 batch verification under ZIP-215 (spec §2.7), over member keys decompressed
//! once when they were loaded.
//!
//! The equation is ed25519-zebra's: with random 128-bit `z_i`,
//! `[8]( −[Σ z_i·s_i]B + Σ [z_i]R_i + Σ [z_i·k_i]A_i ) = 0`, where `k_i = SHA-512(R_i ||
//! A_i || message_i)`, every `s_i` canonical and every `R_i` any encoding of a point. It
//! holds for every batch of signatures that each satisfy the single ZIP-215 check, and
//! for a batch with one that does not only with probability 2⁻¹²⁸ over the `z_i`. We do
//! not call ed25519-zebra's `batch::Verifier` because it takes key *bytes* and
//! decompresses each distinct key in every batch, and a node's batches hold one reading
//! per peer, all keys distinct: at 30 signatures this was 21–26 µs per signature against
//! 14–19 µs here (the `crypto/tests/zip215.rs` property compares both with single
//! checks). Single checks stay ed25519-zebra's.

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use rand::rngs::{StdRng, SysRng};
use rand::{RngExt, SeedableRng};
use sha2::{Digest, Sha512};

use crate::suite::BatchItem;

/// Whether every item's signature verifies; `None` when the operating system gave no
/// randomness for the coefficients (the caller then checks each alone).
pub(crate) fn verify_zip215(items: &[BatchItem<'_>]) -> Option<bool> {
    // One seed from the OS per batch, not one call per coefficient.
    let mut rng = StdRng::try_from_rng(&mut SysRng).ok()?;
    let mut scalars = Vec::with_capacity(2 * items.len() + 1);
    let mut points = Vec::with_capacity(2 * items.len() + 1);
    scalars.push(Scalar::ZERO);
    points.push(ED25519_BASEPOINT_POINT);
    let mut basepoint = Scalar::ZERO;
    for item in items {
        let (r_bytes, s_bytes) = item.signature.0.split_at(32);
        let (Ok(r_bytes), Ok(s_bytes)) =
            (<[u8; 32]>::try_from(r_bytes), <[u8; 32]>::try_from(s_bytes))
        else {
            return Some(false);
        };
        let Some(r) = CompressedEdwardsY(r_bytes).decompress() else {
            return Some(false);
        };
        let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes)) else {
            return Some(false);
        };
        let mut hash = Sha512::new();
        hash.update(r_bytes);
        hash.update(item.signer.to_bytes());
        hash.update(item.domain);
        hash.update(item.body);
        let k = Scalar::from_bytes_mod_order_wide(&hash.finalize().into());
        let z = Scalar::from(rng.random::<u128>());
        basepoint -= z * s;
        scalars.push(z);
        points.push(r);
        scalars.push(z * k);
        points.push(*item.signer.point());
    }
    scalars[0] = basepoint;
    Some(
        EdwardsPoint::vartime_multiscalar_mul(&scalars, &points)
            .mul_by_cofactor()
            .is_identity(),
    )
}
