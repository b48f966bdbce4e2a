//! Proofs of misbehaviour (spec §8.5): finding them in several nodes' logs, and
//! checking one alone with nothing but the cluster's public keys.
//!
//! A proof rests only on the accused's own signatures, plus hash commitments that
//! order two of its readings in real time: a reading's `head` commits to readings its
//! signer had already used, and a request nonce commits to the requester's head. Any
//! message that contains a hash of a signature was made after that signature existed,
//! whoever made it, so the accuser's word is never needed.
//!
//! - `double-signed`: two different readings for one request (same requester, round,
//!   nonce, responder round and epoch). An honest responder answers a nonce once.
//! - `backwards`: two readings to one requester, provably in this order, whose
//!   timestamps run backwards by more than Π within one clock epoch while claiming to
//!   be synced. An honest responder's protocol clock never does (spec §2.6).
//! - `two-faced`: the same, with the two readings sent to different requesters: the
//!   accused told them clocks that cannot both be its own.

use std::collections::HashMap;

use bftime_crypto::{Ed25519Suite, Hash32, Signature, Signed};
use bftime_protocol::message::{derive_head, derive_nonce};
use bftime_protocol::{MemberId, Reading, SyncState};
use serde::{Deserialize, Serialize};

use super::check::ClusterKeys;
use super::record::{Payload, RoundPayload};

/// Slack added to Π for integer rounding of timestamps (1 ms).
const SLACK_NS: i64 = 1_000_000;
/// Largest `seq` tried when matching a nonce (requests per peer and round).
const MAX_SEQ: u16 = 16;

/// A signed reading in a proof file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedHex {
    pub body: String,
    pub signature: String,
}

impl SignedHex {
    pub fn of(s: &Signed<Reading>) -> SignedHex {
        SignedHex {
            body: hex::encode(s.body()),
            signature: hex::encode(s.signature().0),
        }
    }

    pub fn decode(&self) -> Result<Signed<Reading>, String> {
        let body = hex::decode(&self.body).map_err(|e| format!("body: {e}"))?;
        let sig: [u8; 64] = hex::decode(&self.signature)
            .map_err(|e| format!("signature: {e}"))?
            .try_into()
            .map_err(|_| "signature: not 64 bytes".to_owned())?;
        Ok(Signed::from_parts(body, Signature(sig)))
    }
}

/// How the next message commits to a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Via {
    /// The next reading carries the head (its signer had used the readings).
    Head,
    /// The next reading answers a request whose nonce derives from the head.
    Nonce,
}

/// One step of a causal chain: a reading's digest is among `head_digests`, and the
/// next message commits to the head they make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub head_digests: Vec<String>,
    pub via: Via,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u16>,
    /// The next message; absent on the last link (the next is the proof's `second`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<SignedHex>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProofKind {
    DoubleSigned,
    Backwards,
    TwoFaced,
}

impl ProofKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProofKind::DoubleSigned => "double-signed",
            ProofKind::Backwards => "backwards",
            ProofKind::TwoFaced => "two-faced",
        }
    }
}

/// A transferable proof that `accused` misbehaved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    pub kind: ProofKind,
    pub accused: String,
    pub accused_member: u16,
    /// What the proof shows, in words (informative; `check-proof` recomputes it).
    pub summary: String,
    pub first: SignedHex,
    pub second: SignedHex,
    /// Links ordering `first` before `second` (none for `double-signed`).
    #[serde(default)]
    pub links: Vec<Link>,
    /// How many such violations the logs showed for this member and kind.
    #[serde(default)]
    pub occurrences: u64,
}

/// A proofs file (`bftime audit evidence --out`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofFile {
    pub version: u32,
    pub cluster_id: String,
    pub cluster_tag: String,
    pub proofs: Vec<Proof>,
}

/// Why a proof does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ProofError(pub String);

fn err<T>(s: impl Into<String>) -> Result<T, ProofError> {
    Err(ProofError(s.into()))
}

/// Verifies a reading's signature under its claimed responder's member key.
fn verified(c: &ClusterKeys, s: &Signed<Reading>, what: &str) -> Result<Reading, ProofError> {
    let claimed = s
        .decode_unverified()
        .map_err(|e| ProofError(format!("{what}: malformed reading: {e}")))?;
    let Some(key) = c.key(claimed.responder) else {
        return err(format!(
            "{what}: responder {} is not a member",
            claimed.responder
        ));
    };
    let r = s
        .verify(&Ed25519Suite, key)
        .map_err(|_| ProofError(format!("{what}: bad signature")))?;
    if r.cluster != c.tag {
        return err(format!("{what}: reading is for another cluster"));
    }
    Ok(r)
}

fn hex32(s: &str, what: &str) -> Result<Hash32, ProofError> {
    hex::decode(s)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| ProofError(format!("{what}: not 32 hex bytes")))
}

/// Whether `second` provably ran backwards from `first` by more than Π (both by the
/// same responder, synced, one epoch). Returns how far back.
fn backwards_by(c: &ClusterKeys, a: &Reading, b: &Reading) -> Option<i64> {
    if a.responder != b.responder
        || a.epoch != b.epoch
        || a.state != SyncState::Synced
        || b.state != SyncState::Synced
    {
        return None;
    }
    let back = a.transmit.0.saturating_sub(b.receive.0);
    (back > c.precision_ns + SLACK_NS).then_some(back)
}

/// Checks a proof standalone. Returns a sentence saying what it proves.
pub fn check_proof(c: &ClusterKeys, p: &Proof) -> Result<String, ProofError> {
    let accused = MemberId(p.accused_member);
    if c.key(accused).is_none() {
        return err(format!(
            "accused member {} is not in the cluster file",
            p.accused_member
        ));
    }
    let first_s = p
        .first
        .decode()
        .map_err(|e| ProofError(format!("first: {e}")))?;
    let second_s = p
        .second
        .decode()
        .map_err(|e| ProofError(format!("second: {e}")))?;
    let a = verified(c, &first_s, "first")?;
    let b = verified(c, &second_s, "second")?;
    if a.responder != accused || b.responder != accused {
        return err("the two readings are not both signed by the accused");
    }
    let name = c.name(accused);
    match p.kind {
        ProofKind::DoubleSigned => {
            if first_s.body() == second_s.body() {
                return err("the two readings are the same reading");
            }
            if (a.requester, a.round, a.nonce, a.responder_round, a.epoch)
                != (b.requester, b.round, b.nonce, b.responder_round, b.epoch)
            {
                return err("the two readings answer different requests");
            }
            Ok(format!(
                "{name} signed two different readings for one request of {} (round {}, its round {}): an honest node answers a nonce once",
                c.name(a.requester),
                a.round,
                a.responder_round
            ))
        }
        ProofKind::Backwards | ProofKind::TwoFaced => {
            if c.round_period_ns < 2 * c.precision_ns {
                return err(
                    "this cluster's round period is shorter than 2Π: backwards proofs are not sound for it",
                );
            }
            if p.links.is_empty() {
                return err("no links order the two readings");
            }
            let suite = Ed25519Suite;
            let mut current = first_s.clone();
            for (i, link) in p.links.iter().enumerate() {
                let digests = link
                    .head_digests
                    .iter()
                    .map(|d| hex32(d, "head digest"))
                    .collect::<Result<Vec<_>, _>>()?;
                if !digests.contains(&current.digest(&suite)) {
                    return err(format!(
                        "link {i}: the previous reading is not under the head"
                    ));
                }
                let head = derive_head(&suite, &digests);
                let next_s = match &link.next {
                    Some(n) => n
                        .decode()
                        .map_err(|e| ProofError(format!("link {i}: {e}")))?,
                    None if i + 1 == p.links.len() => second_s.clone(),
                    None => return err(format!("link {i}: no next message")),
                };
                let next = verified(c, &next_s, &format!("link {i} next"))?;
                match link.via {
                    Via::Head => {
                        if next.head != head {
                            return err(format!("link {i}: next reading does not carry the head"));
                        }
                    }
                    Via::Nonce => {
                        let salt: [u8; 16] = link
                            .salt
                            .as_deref()
                            .and_then(|s| hex::decode(s).ok())
                            .and_then(|b| b.try_into().ok())
                            .ok_or_else(|| ProofError(format!("link {i}: salt missing")))?;
                        let seq = link.seq.unwrap_or(0);
                        if derive_nonce(&suite, &head, &salt, next.responder, seq) != next.nonce {
                            return err(format!(
                                "link {i}: next nonce does not derive from the head"
                            ));
                        }
                    }
                }
                current = next_s;
            }
            if current != second_s {
                return err("the links do not end at the second reading");
            }
            let Some(back) = backwards_by(c, &a, &b) else {
                return err(format!(
                    "the readings do not run backwards by more than Π ({} ms) within one synced epoch",
                    c.precision_ns / 1_000_000
                ));
            };
            let kind = if a.requester == b.requester {
                ProofKind::Backwards
            } else {
                ProofKind::TwoFaced
            };
            if kind != p.kind {
                return err(format!(
                    "the readings show {}, not {}",
                    kind.as_str(),
                    p.kind.as_str()
                ));
            }
            Ok(format!(
                "{name} signed a reading for {} and later (provably) one for {} whose clock is {:.3} ms behind it in one synced epoch; an honest clock is never more than Π = {} ms behind",
                c.name(a.requester),
                c.name(b.requester),
                back as f64 / 1e6,
                c.precision_ns / 1_000_000
            ))
        }
    }
}

/// One round record of one log, decoded for searching.
#[derive(Debug)]
struct RoundRec {
    head_used: Hash32,
    salt: [u8; 16],
    head: Hash32,
    readings: Vec<(Reading, Signed<Reading>, Hash32)>,
    duplicates: Vec<(Signed<Reading>, Signed<Reading>)>,
    /// Responder → position in `readings`.
    by_responder: HashMap<u16, usize>,
}

impl RoundRec {
    fn from(r: &RoundPayload) -> RoundRec {
        let suite = Ed25519Suite;
        let readings: Vec<(Reading, Signed<Reading>, Hash32)> = r
            .readings
            .iter()
            .filter_map(|s| Some((s.decode_unverified().ok()?, s.clone(), s.digest(&suite))))
            .collect();
        RoundRec {
            head_used: r.head_used,
            salt: r.salt,
            head: r.head,
            by_responder: readings
                .iter()
                .enumerate()
                .map(|(i, (r, _, _))| (r.responder.0, i))
                .collect(),
            readings,
            duplicates: r.duplicates.clone(),
        }
    }

    fn digests_hex(&self) -> Vec<String> {
        self.readings
            .iter()
            .map(|(_, _, d)| hex::encode(d))
            .collect()
    }

    fn by_responder(&self, m: MemberId) -> Option<&(Reading, Signed<Reading>, Hash32)> {
        self.by_responder.get(&m.0).map(|&i| &self.readings[i])
    }
}

/// The round records of one (already verified) log.
#[derive(Debug, Default)]
pub struct LogRounds {
    rounds: Vec<RoundRec>,
}

impl LogRounds {
    pub fn push(&mut self, p: &Payload) {
        if let Payload::Round(r) = p {
            self.rounds.push(RoundRec::from(r));
        }
    }
}

fn seq_for(head: &Hash32, salt: &[u8; 16], b: &Reading) -> Option<u16> {
    (0..MAX_SEQ).find(|&s| derive_nonce(&Ed25519Suite, head, salt, b.responder, s) == b.nonce)
}

/// Searches verified logs for proofs; keeps the strongest per (member, kind).
pub fn find(c: &ClusterKeys, logs: &[LogRounds]) -> Vec<Proof> {
    let mut best: HashMap<(u16, ProofKind), (i64, Proof)> = HashMap::new();
    let mut keep = |kind: ProofKind, strength: i64, p: Proof| {
        let e = best
            .entry((p.accused_member, kind))
            .or_insert((i64::MIN, p.clone()));
        e.1.occurrences += 1;
        if strength > e.0 {
            let n = e.1.occurrences;
            *e = (
                strength,
                Proof {
                    occurrences: n,
                    ..p
                },
            );
        }
    };
    // Where each head came from: (log, round record).
    let mut heads: HashMap<Hash32, (usize, usize)> = HashMap::new();
    for (li, log) in logs.iter().enumerate() {
        for (ri, r) in log.rounds.iter().enumerate() {
            heads.insert(r.head, (li, ri));
        }
    }
    let proof =
        |kind, a: &Signed<Reading>, ar: &Reading, b: &Signed<Reading>, links, back: i64| Proof {
            kind,
            accused: c.name(ar.responder),
            accused_member: ar.responder.0,
            summary: format!(
                "{} ran {:.3} ms backwards between a reading for {} and a later one for {}",
                c.name(ar.responder),
                back as f64 / 1e6,
                c.name(ar.requester),
                b.decode_unverified()
                    .map(|r| c.name(r.requester))
                    .unwrap_or_default()
            ),
            first: SignedHex::of(a),
            second: SignedHex::of(b),
            links,
            occurrences: 0,
        };
    for log in logs {
        for (si, rec) in log.rounds.iter().enumerate() {
            for (x, y) in &rec.duplicates {
                if let Ok(xr) = x.decode_unverified() {
                    keep(
                        ProofKind::DoubleSigned,
                        0,
                        Proof {
                            kind: ProofKind::DoubleSigned,
                            accused: c.name(xr.responder),
                            accused_member: xr.responder.0,
                            summary: format!(
                                "{} signed two readings for one request",
                                c.name(xr.responder)
                            ),
                            first: SignedHex::of(x),
                            second: SignedHex::of(y),
                            links: Vec::new(),
                            occurrences: 0,
                        },
                    );
                }
            }
            let Some(next) = log.rounds.get(si + 1) else {
                continue;
            };
            if next.head_used != rec.head {
                continue; // a restart in between: no nonce link
            }
            // One hop: A used in this round, B in the next, by the same responder.
            for (ar, a, _) in &rec.readings {
                if let Some((br, b, _)) = next.by_responder(ar.responder)
                    && let Some(back) = backwards_by(c, ar, br)
                    && let Some(seq) = seq_for(&rec.head, &next.salt, br)
                {
                    let links = vec![Link {
                        head_digests: rec.digests_hex(),
                        via: Via::Nonce,
                        salt: Some(hex::encode(next.salt)),
                        seq: Some(seq),
                        next: None,
                    }];
                    keep(
                        ProofKind::Backwards,
                        back,
                        proof(ProofKind::Backwards, a, ar, b, links, back),
                    );
                }
            }
            // Two hops: A used by X (round r) < M, X's reading to us carrying X's head
            // (used here) < B, answering our next round's request.
            for (mr, m, _) in &rec.readings {
                let Some(&(xl, xr)) = heads.get(&mr.head) else {
                    continue;
                };
                let xrec = &logs[xl].rounds[xr];
                for (ar, a, _) in &xrec.readings {
                    let Some((br, b, _)) = next.by_responder(ar.responder) else {
                        continue;
                    };
                    if ar.requester == br.requester {
                        continue;
                    }
                    let Some(back) = backwards_by(c, ar, br) else {
                        continue;
                    };
                    let Some(seq) = seq_for(&rec.head, &next.salt, br) else {
                        continue;
                    };
                    let links = vec![
                        Link {
                            head_digests: xrec.digests_hex(),
                            via: Via::Head,
                            salt: None,
                            seq: None,
                            next: Some(SignedHex::of(m)),
                        },
                        Link {
                            head_digests: rec.digests_hex(),
                            via: Via::Nonce,
                            salt: Some(hex::encode(next.salt)),
                            seq: Some(seq),
                            next: None,
                        },
                    ];
                    keep(
                        ProofKind::TwoFaced,
                        back,
                        proof(ProofKind::TwoFaced, a, ar, b, links, back),
                    );
                }
            }
        }
    }
    let mut out: Vec<Proof> = best.into_values().map(|(_, p)| p).collect();
    out.sort_by_key(|p| (p.accused_member, p.kind));
    out
}
