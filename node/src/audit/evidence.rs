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
use bftime_protocol::message::{derive_nonce, head_chain};
use bftime_protocol::{MemberId, Reading, SyncState};
use serde::{Deserialize, Serialize};

use super::check::{BadReason, BadRecord, Checked, Checker, ClusterKeys, check_files};
use super::record::{Payload, RoundPayload};

/// Slack added to Π for integer rounding of timestamps (1 ms).
const SLACK_NS: i64 = 1_000_000;
use super::check::nonce_seq;

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

/// One step of a causal chain: starting from `prev_head`, a node's head advanced by
/// `digests` (the first being the previous message's), and the next message commits
/// to the head that results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub prev_head: String,
    pub digests: Vec<String>,
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
    // The name is not signed: a proof must not carry one the cluster file does not
    // give its member number (an honest member's name on a faulty member's proof).
    if p.accused != c.name(accused) {
        return err(format!(
            "the proof names {:?} as the accused, but member {} is {:?} in the cluster file",
            p.accused,
            p.accused_member,
            c.name(accused)
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
                    .digests
                    .iter()
                    .map(|d| hex32(d, "head digest"))
                    .collect::<Result<Vec<_>, _>>()?;
                if digests.first() != Some(&current.digest(&suite)) {
                    return err(format!(
                        "link {i}: the chain does not start with the previous reading"
                    ));
                }
                let start = hex32(&link.prev_head, "prev_head")?;
                let head = head_chain(&suite, &start, &digests)
                    .last()
                    .copied()
                    .unwrap_or(start);
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

/// Everything one (verified) log says about the readings its node accepted, in order.
#[derive(Debug, Default)]
pub struct LogRounds {
    readings: Vec<(Reading, Signed<Reading>, Hash32)>,
    /// Head before each reading; `before[p]` advanced by reading p is `before[p + 1]`
    /// (within one run of the node).
    before: Vec<Hash32>,
    /// Position of the head each reading's nonce derives from (≤ its own position).
    nonce_at: Vec<u32>,
    salt: Vec<[u8; 16]>,
    /// Run of the node (a restart starts a new chain from zeros).
    run: Vec<u32>,
    current_run: u32,
    /// Head value → position it stands before (the head after `q` readings).
    heads: HashMap<Hash32, u32>,
    /// Positions of each responder's usable readings (indexed by member).
    by_responder: Vec<Vec<u32>>,
    /// Whether each reading may appear in a proof (as A, B or a link's message): its
    /// peer has an interval in its round. A reading without one was not used: under
    /// batch verification, a forged one (chained, spec §4.2) or its sender's others in
    /// that round. `verify` guarantees that every reading with an interval is genuine.
    usable: Vec<bool>,
    duplicates: Vec<(Signed<Reading>, Signed<Reading>)>,
}

impl LogRounds {
    pub fn push(&mut self, p: &Payload) {
        match p {
            Payload::Start(_) => self.current_run += 1,
            Payload::Round(r) => self.push_round(r),
            _ => {}
        }
    }

    fn push_round(&mut self, r: &RoundPayload) {
        let suite = Ed25519Suite;
        let base = self.readings.len() as u32;
        let decoded: Vec<(Reading, Signed<Reading>, Hash32)> = r
            .readings
            .iter()
            .filter_map(|s| Some((s.decode_unverified().ok()?, s.clone(), s.digest(&suite))))
            .collect();
        if decoded.len() != r.readings.len() || r.nonce_from.len() != r.readings.len() {
            return; // the checker refuses such a record; never here
        }
        let digests: Vec<Hash32> = decoded.iter().map(|d| d.2).collect();
        let heads = head_chain(&suite, &r.head_used, &digests);
        for (i, h) in heads.iter().enumerate() {
            if *h != [0; 32] {
                self.heads.insert(*h, base + i as u32);
            }
        }
        let mut with_interval = Vec::new();
        for row in &r.intervals {
            let m = usize::from(row.member);
            if with_interval.len() <= m {
                with_interval.resize(m + 1, false);
            }
            with_interval[m] = true;
        }
        for (i, d) in decoded.into_iter().enumerate() {
            let pos = base + i as u32;
            let who = usize::from(d.0.responder.0);
            if self.by_responder.len() <= who {
                self.by_responder.resize(who + 1, Vec::new());
            }
            let usable = with_interval.get(who).copied().unwrap_or(false);
            if usable {
                self.by_responder[who].push(pos);
            }
            self.usable.push(usable);
            self.before.push(heads[i]);
            self.nonce_at.push(base + u32::from(r.nonce_from[i]));
            self.salt.push(r.salt);
            self.run.push(self.current_run);
            self.readings.push(d);
        }
        self.duplicates.extend(r.duplicates.iter().cloned());
    }

    /// The link from reading `from` to the head before position `to` (same run).
    fn link(
        &self,
        from: u32,
        to: u32,
        via: Via,
        next: Option<SignedHex>,
        nonce_of: Option<u32>,
    ) -> Link {
        let (salt, seq) = match nonce_of {
            Some(k) => {
                let b = &self.readings[k as usize].0;
                let head = self.head_before(to);
                (
                    Some(hex::encode(self.salt[k as usize])),
                    nonce_seq(&head, &self.salt[k as usize], b),
                )
            }
            None => (None, None),
        };
        Link {
            prev_head: hex::encode(self.before[from as usize]),
            digests: (from..to)
                .map(|p| hex::encode(self.readings[p as usize].2))
                .collect(),
            via,
            salt,
            seq,
            next,
        }
    }

    fn head_before(&self, q: u32) -> Hash32 {
        match self.before.get(q as usize) {
            Some(h) => *h,
            None => {
                // After the last reading: advance the last one.
                let last = self.readings.len() - 1;
                bftime_protocol::message::advance_head(
                    &Ed25519Suite,
                    &self.before[last],
                    &self.readings[last].2,
                )
            }
        }
    }

    /// The last reading from `responder` before position `q`, in `run`.
    fn last_before(&self, responder: u16, q: u32, run: u32) -> Option<u32> {
        let list = self.by_responder.get(usize::from(responder))?;
        let i = list.partition_point(|&p| p < q);
        let p = *list.get(i.checked_sub(1)?)?;
        (self.run[p as usize] == run).then_some(p)
    }

    /// The first reading from `responder` whose request was sent after position `m`
    /// was accepted, in `run`.
    fn first_chained_after(&self, responder: u16, m: u32, run: u32) -> Option<u32> {
        let list = self.by_responder.get(usize::from(responder))?;
        let i = list.partition_point(|&p| p <= m);
        list[i..]
            .iter()
            .take(4)
            .copied()
            .find(|&k| self.nonce_at[k as usize] > m && self.run[k as usize] == run)
    }
}

/// Verifies one log (all its files) against the cluster and gathers what the search
/// needs; `each` sees every record too. A log that does not verify is no evidence.
pub fn read_log<'c>(
    c: &'c ClusterKeys,
    files: &[std::path::PathBuf],
    each: impl FnMut(&Checked),
) -> Result<(LogRounds, Checker<'c>), BadRecord> {
    match read_log_before_tear(c, files, each)? {
        (rounds, checker, None) => Ok((rounds, checker)),
        (_, _, Some(tear)) => Err(tear),
    }
}

/// As [`read_log`], but a log whose only damage is a torn final record (the node crashed
/// mid-write: after an incident, the usual state of a crashed node's log) gives the
/// rounds before the tear, and the tear. Any other damage is refused as by `read_log`.
pub fn read_log_before_tear<'c>(
    c: &'c ClusterKeys,
    files: &[std::path::PathBuf],
    mut each: impl FnMut(&Checked),
) -> Result<(LogRounds, Checker<'c>, Option<BadRecord>), BadRecord> {
    let mut rounds = LogRounds::default();
    let mut checker = Checker::new(Some(c));
    let result = check_files(files, &mut checker, |_, rec| {
        rounds.push(&rec.payload);
        each(rec);
    });
    match result {
        Ok(_) => Ok((rounds, checker, None)),
        Err(bad) if matches!(bad.reason, BadReason::TruncatedTail(_)) && checker.records > 0 => {
            Ok((rounds, checker, Some(bad)))
        }
        Err(bad) => Err(bad),
    }
}

/// The strongest proof per (member, kind), and how many violations were seen.
#[derive(Default)]
struct Best(HashMap<(u16, ProofKind), (i64, u64, Option<Proof>)>);

impl Best {
    /// Counts a violation; true when it beats the best so far (build and `put` it).
    fn offer(&mut self, member: u16, kind: ProofKind, strength: i64) -> bool {
        let e = self.0.entry((member, kind)).or_insert((i64::MIN, 0, None));
        e.1 += 1;
        strength > e.0
    }

    fn merge(&mut self, other: Best) {
        for (k, (strength, n, p)) in other.0 {
            let e = self.0.entry(k).or_insert((i64::MIN, 0, None));
            e.1 += n;
            if strength > e.0 {
                e.0 = strength;
                e.2 = p;
            }
        }
    }

    fn put(&mut self, strength: i64, p: Proof) {
        if let Some(e) = self.0.get_mut(&(p.accused_member, p.kind)) {
            e.0 = strength;
            e.2 = Some(p);
        }
    }
}

/// Searches verified logs for proofs; keeps the strongest per (member, kind). The
/// logs are searched in parallel, one share per core.
pub fn find(c: &ClusterKeys, logs: &[LogRounds]) -> Vec<Proof> {
    // Which log each head belongs to.
    let mut owner: HashMap<Hash32, (usize, u32)> = HashMap::new();
    for (li, log) in logs.iter().enumerate() {
        for (h, q) in &log.heads {
            owner.insert(*h, (li, *q));
        }
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let share = logs.len().div_ceil(threads).max(1);
    let owner = &owner;
    let found: Vec<Best> = std::thread::scope(|scope| {
        let handles: Vec<_> = logs
            .chunks(share)
            .map(|part| {
                scope.spawn(move || {
                    let mut best = Best::default();
                    for log in part {
                        search(c, logs, owner, log, &mut best);
                    }
                    best
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let mut best = Best::default();
    for b in found {
        best.merge(b);
    }
    let mut out: Vec<Proof> = best
        .0
        .into_values()
        .filter_map(|(_, n, p)| {
            p.map(|p| Proof {
                occurrences: n,
                ..p
            })
        })
        .collect();
    out.sort_by_key(|p| (p.accused_member, p.kind));
    out
}

/// Proofs with one log as the last requester (B's).
fn search(
    c: &ClusterKeys,
    logs: &[LogRounds],
    owner: &HashMap<Hash32, (usize, u32)>,
    log: &LogRounds,
    best: &mut Best,
) {
    let proof = |kind,
                 a: &(Reading, Signed<Reading>, Hash32),
                 b: &(Reading, Signed<Reading>, Hash32),
                 links,
                 back: i64| Proof {
        kind,
        accused: c.name(a.0.responder),
        accused_member: a.0.responder.0,
        summary: format!(
            "{} ran {:.3} ms backwards between a reading for {} and a later one for {}",
            c.name(a.0.responder),
            back as f64 / 1e6,
            c.name(a.0.requester),
            c.name(b.0.requester),
        ),
        first: SignedHex::of(&a.1),
        second: SignedHex::of(&b.1),
        links,
        occurrences: 0,
    };
    for (x, y) in &log.duplicates {
        if let Ok(xr) = x.decode_unverified()
            && best.offer(xr.responder.0, ProofKind::DoubleSigned, 0)
        {
            best.put(
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
    for k in 0..log.readings.len() as u32 {
        if !log.usable[k as usize] {
            continue;
        }
        let b = &log.readings[k as usize];
        let run = log.run[k as usize];
        // One hop: A accepted here before the request for B left.
        let nf = log.nonce_at[k as usize];
        if let Some(pa) = log.last_before(b.0.responder.0, nf, run) {
            let a = &log.readings[pa as usize];
            if let Some(back) = backwards_by(c, &a.0, &b.0)
                && best.offer(a.0.responder.0, ProofKind::Backwards, back)
            {
                let links = vec![log.link(pa, nf, Via::Nonce, None, Some(k))];
                best.put(back, proof(ProofKind::Backwards, a, b, links, back));
            }
        }
    }
    // Two hops: A accepted by X before X signed M (M carries X's head), M accepted
    // here before the request for B left.
    for m in 0..log.readings.len() as u32 {
        if !log.usable[m as usize] {
            continue;
        }
        let mr = &log.readings[m as usize];
        let run = log.run[m as usize];
        let Some(&(xl, q)) = owner.get(&mr.0.head) else {
            continue;
        };
        let xlog = &logs[xl];
        let Some(xrun) = xlog.run.get(q.saturating_sub(1) as usize).copied() else {
            continue;
        };
        for p in (0..xlog.by_responder.len() as u16).filter(|&p| p != mr.0.requester.0) {
            let Some(pa) = xlog.last_before(p, q, xrun) else {
                continue;
            };
            let Some(kb) = log.first_chained_after(p, m, run) else {
                continue;
            };
            let a = &xlog.readings[pa as usize];
            let b = &log.readings[kb as usize];
            if a.0.requester == b.0.requester {
                continue;
            }
            let Some(back) = backwards_by(c, &a.0, &b.0) else {
                continue;
            };
            // Build the (large) proof only when it beats the best one so far.
            if !best.offer(a.0.responder.0, ProofKind::TwoFaced, back) {
                continue;
            }
            let nf = log.nonce_at[kb as usize];
            let links = vec![
                xlog.link(pa, q, Via::Head, Some(SignedHex::of(&mr.1)), None),
                log.link(m, nf, Via::Nonce, None, Some(kb)),
            ];
            best.put(back, proof(ProofKind::TwoFaced, a, b, links, back));
        }
    }
}
