//! Who a session cookie or an API token stands for, remembered for a few seconds. A street leader
//! panning the map asks for dozens of tiles a second, each carrying the same cookie; without this
//! every tile asked the database who the caller is (two queries for a user's token) before the
//! tile cache could answer.
//!
//! Entries are keyed by the credential's SHA-256 (what the database stores, never the credential
//! itself) and live at most [`TTL`]. Anything that ends or changes a credential drops the whole
//! cache: this process does so itself right after the change (log-out, password change, disabling
//! a user), and every other process does when the database tells it (migration 0015 notifies
//! `gridwatch_accounts` on every update or delete of accounts, sessions and API keys; see
//! `workflow::tiles::follow_changes`). A lookup that started before a drop cannot put its answer
//! back afterwards ([`CredentialCache::generation`]). Unknown credentials are not remembered, so
//! a new session or key works at once and a 401 always comes from the database.

use super::Caller;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long an entry may be used without asking the database again: the longest a change made
/// while this process could not hear the database's notifications goes unseen.
pub const TTL: Duration = Duration::from_secs(10);

/// Entries kept at most; when full the cache starts again empty (callers are few: staff).
pub const CAPACITY: usize = 10_000;

/// Which kind of credential a hash is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Credential {
    Session,
    Token,
}

#[derive(Debug)]
pub struct CredentialCache {
    ttl: Duration,
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// bumped by every drop
    generation: u64,
    /// by hash: when the database said it, and who
    sessions: HashMap<String, (Instant, Caller)>,
    tokens: HashMap<String, (Instant, Caller)>,
}

impl Inner {
    fn of(&mut self, kind: Credential) -> &mut HashMap<String, (Instant, Caller)> {
        match kind {
            Credential::Session => &mut self.sessions,
            Credential::Token => &mut self.tokens,
        }
    }

    fn len(&self) -> usize {
        self.sessions.len() + self.tokens.len()
    }

    fn clear(&mut self) {
        self.sessions.clear();
        self.tokens.clear();
    }
}

impl Default for CredentialCache {
    fn default() -> Self {
        CredentialCache::new(TTL, CAPACITY)
    }
}

impl CredentialCache {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        CredentialCache {
            ttl,
            capacity: capacity.max(1),
            inner: Mutex::default(),
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The map holds no invariant a panicking holder could have broken half-way.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The caller remembered for `sha256`, unless older than the TTL.
    pub fn get(&self, kind: Credential, sha256: &str, now: Instant) -> Option<Caller> {
        let mut inner = self.inner();
        let entries = inner.of(kind);
        match entries.get(sha256) {
            Some((at, caller)) if now.saturating_duration_since(*at) < self.ttl => {
                Some(caller.clone())
            }
            Some(_) => {
                entries.remove(sha256);
                None
            }
            None => None,
        }
    }

    /// Read before asking the database; give it to [`CredentialCache::insert`].
    pub fn generation(&self) -> u64 {
        self.inner().generation
    }

    /// Remembers what the database said, unless the cache was dropped since `generation` was
    /// read (the answer may predate the change that dropped it).
    pub fn insert(
        &self,
        kind: Credential,
        sha256: String,
        caller: Caller,
        generation: u64,
        now: Instant,
    ) {
        let mut inner = self.inner();
        if inner.generation != generation {
            return;
        }
        if inner.len() >= self.capacity {
            inner.clear();
        }
        inner.of(kind).insert(sha256, (now, caller));
    }

    /// Forgets every credential: something about accounts, sessions or keys changed.
    pub fn invalidate_all(&self) {
        let mut inner = self.inner();
        inner.generation += 1;
        inner.clear();
    }

    pub fn len(&self) -> usize {
        self.inner().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(id: i64) -> Caller {
        Caller::Client {
            id,
            name: format!("client {id}"),
            purpose: super::super::ClientPurpose::Reports,
        }
    }

    #[test]
    fn remembers_for_the_ttl_only() {
        let cache = CredentialCache::new(Duration::from_secs(10), 100);
        let t0 = Instant::now();
        cache.insert(
            Credential::Token,
            "aa".into(),
            client(1),
            cache.generation(),
            t0,
        );
        assert_eq!(
            cache.get(Credential::Token, "aa", t0 + Duration::from_secs(9)),
            Some(client(1))
        );
        // a session with the same hash is another credential
        assert_eq!(cache.get(Credential::Session, "aa", t0), None);
        assert_eq!(
            cache.get(Credential::Token, "aa", t0 + Duration::from_secs(10)),
            None
        );
        assert!(cache.is_empty(), "an expired entry is removed when met");
    }

    #[test]
    fn a_lookup_older_than_a_drop_is_not_put_back() {
        let cache = CredentialCache::default();
        let now = Instant::now();
        let before = cache.generation();
        cache.invalidate_all();
        cache.insert(Credential::Session, "bb".into(), client(2), before, now);
        assert_eq!(cache.get(Credential::Session, "bb", now), None);
        cache.insert(
            Credential::Session,
            "bb".into(),
            client(2),
            cache.generation(),
            now,
        );
        assert_eq!(cache.get(Credential::Session, "bb", now), Some(client(2)));
        cache.invalidate_all();
        assert_eq!(cache.get(Credential::Session, "bb", now), None);
    }

    #[test]
    fn is_bounded() {
        let cache = CredentialCache::new(TTL, 3);
        let now = Instant::now();
        for i in 0..10 {
            cache.insert(
                Credential::Token,
                format!("{i}"),
                client(i),
                cache.generation(),
                now,
            );
            assert!(cache.len() <= 3);
        }
        assert_eq!(cache.get(Credential::Token, "9", now), Some(client(9)));
    }
}
