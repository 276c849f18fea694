//! What keeps one address or one crowd from taking the server: failed authentications counted per
//! address, and a bounded number of connections waiting to authenticate and of sessions.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Failed authentications per address within a sliding window. An address over the limit is
/// turned away at once (its connections closed before the handshake) until its failures age out.
pub struct AuthLimiter {
    limit: usize,
    window: Duration,
    failures: Mutex<HashMap<IpAddr, Vec<Instant>>>,
}

/// How many addresses the limiter remembers at most: a flood from many addresses must not grow
/// the map without end (the oldest are forgotten first).
const REMEMBERED: usize = 4096;

impl AuthLimiter {
    pub fn new(limit: usize, window: Duration) -> Self {
        Self {
            limit: limit.max(1),
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one failure of `address`; true if that puts it at or over the limit (just now).
    pub fn fail(&self, address: IpAddr, now: Instant) -> bool {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if failures.len() >= REMEMBERED && !failures.contains_key(&address) {
            failures.retain(|_, times| times.last().is_some_and(|t| now - *t < self.window));
            if failures.len() >= REMEMBERED {
                let oldest = failures
                    .iter()
                    .min_by_key(|(_, times)| times.last().copied())
                    .map(|(a, _)| *a);
                if let Some(oldest) = oldest {
                    failures.remove(&oldest);
                }
            }
        }
        let times = failures.entry(address).or_default();
        times.retain(|t| now - *t < self.window);
        if times.len() < self.limit {
            times.push(now);
        }
        times.len() >= self.limit
    }

    /// Whether `address` is over the limit now.
    pub fn blocked(&self, address: IpAddr, now: Instant) -> bool {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.get(&address).is_some_and(|times| {
            times.iter().filter(|t| now - **t < self.window).count() >= self.limit
        })
    }
}

/// A bounded count (sessions, connections still authenticating): `take` hands out a slot that
/// frees itself when dropped, so a session that ends in any way gives its place back.
#[derive(Clone)]
pub struct Slots {
    taken: Arc<AtomicUsize>,
    limit: usize,
}

pub struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Slots {
    pub fn new(limit: usize) -> Self {
        Self {
            taken: Arc::new(AtomicUsize::new(0)),
            limit,
        }
    }

    pub fn take(&self) -> Option<Slot> {
        self.taken
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < self.limit).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(self.taken.clone()))
    }

    pub fn limit(&self) -> usize {
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_blocked_at_the_limit_until_its_failures_age_out() {
        let limiter = AuthLimiter::new(3, Duration::from_secs(60));
        let bad: IpAddr = [10, 0, 0, 1].into();
        let good: IpAddr = [10, 0, 0, 2].into();
        let start = Instant::now();
        assert!(!limiter.fail(bad, start));
        assert!(!limiter.fail(bad, start));
        assert!(!limiter.blocked(bad, start));
        assert!(
            limiter.fail(bad, start),
            "the third failure reaches the limit"
        );
        assert!(limiter.blocked(bad, start));
        // More failures while blocked do not extend what is remembered beyond the limit.
        for _ in 0..200 {
            limiter.fail(bad, start + Duration::from_secs(1));
        }
        assert!(
            !limiter.blocked(good, start),
            "another address is not affected"
        );
        assert!(limiter.blocked(bad, start + Duration::from_secs(59)));
        assert!(!limiter.blocked(bad, start + Duration::from_secs(61)));
    }

    #[test]
    fn a_flood_from_many_addresses_keeps_the_map_bounded() {
        let limiter = AuthLimiter::new(2, Duration::from_secs(60));
        let now = Instant::now();
        for i in 0..(REMEMBERED as u32 * 3) {
            limiter.fail(IpAddr::from(i.to_be_bytes()), now);
        }
        let remembered = limiter.failures.lock().map(|m| m.len()).unwrap_or(0);
        assert!(remembered <= REMEMBERED, "{remembered}");
    }

    #[test]
    fn slots_are_bounded_and_given_back_when_dropped() {
        let slots = Slots::new(2);
        let a = slots.take();
        let b = slots.take();
        assert!(a.is_some() && b.is_some());
        assert!(slots.take().is_none());
        drop(a);
        assert_eq!(slots.taken.load(Ordering::SeqCst), 1);
        assert!(slots.take().is_some());
    }
}
