//! Session lifetime and sign-in lockout, as rules over timestamps (OWASP Session Management and
//! Authentication cheat sheets: idle and absolute timeouts; lock accounts after repeated failures).

/// How long a session lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    /// Ended after this long without a request.
    pub idle_ms: i64,
    /// Ended this long after sign-in, however active.
    pub absolute_ms: i64,
    /// Break-the-glass access lasts this long.
    pub break_glass_ms: i64,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        SessionPolicy {
            idle_ms: 30 * 60 * 1000,
            absolute_ms: 12 * 60 * 60 * 1000,
            break_glass_ms: 60 * 60 * 1000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    Active,
    IdleExpired,
    AbsoluteExpired,
    Revoked,
}

impl SessionPolicy {
    pub fn state(
        &self,
        created_ms: i64,
        last_seen_ms: i64,
        revoked: bool,
        now_ms: i64,
    ) -> SessionState {
        if revoked {
            SessionState::Revoked
        } else if now_ms - created_ms >= self.absolute_ms {
            SessionState::AbsoluteExpired
        } else if now_ms - last_seen_ms >= self.idle_ms {
            SessionState::IdleExpired
        } else {
            SessionState::Active
        }
    }

    /// Whether `last_seen` is old enough to be worth writing again (saves a write per request).
    pub fn should_touch(&self, last_seen_ms: i64, now_ms: i64) -> bool {
        now_ms - last_seen_ms >= (self.idle_ms / 30).max(1000)
    }
}

/// Temporary lockout after repeated failed sign-ins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Failures in a row that lock the account.
    pub max_failures: i64,
    /// How long the lock lasts.
    pub lock_ms: i64,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        LockoutPolicy {
            max_failures: 5,
            lock_ms: 15 * 60 * 1000,
        }
    }
}

impl LockoutPolicy {
    /// After one more failure: the new failure count and, when it reaches the limit, the time
    /// the lock ends (the count then starts again).
    pub fn after_failure(&self, failures_before: i64, now_ms: i64) -> (i64, Option<i64>) {
        let failures = failures_before + 1;
        if failures >= self.max_failures {
            (0, Some(now_ms + self.lock_ms))
        } else {
            (failures, None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_end_when_idle_or_old_or_revoked() {
        let p = SessionPolicy {
            idle_ms: 100,
            absolute_ms: 1000,
            break_glass_ms: 1,
        };
        assert_eq!(p.state(0, 950, false, 999), SessionState::Active);
        assert_eq!(p.state(0, 850, false, 950), SessionState::IdleExpired);
        assert_eq!(p.state(0, 990, false, 1000), SessionState::AbsoluteExpired);
        assert_eq!(p.state(0, 990, true, 991), SessionState::Revoked);
    }

    #[test]
    fn the_fifth_failure_locks_the_account() {
        let p = LockoutPolicy::default();
        assert_eq!(p.after_failure(0, 10), (1, None));
        assert_eq!(p.after_failure(4, 10), (0, Some(10 + 15 * 60 * 1000)));
    }
}
