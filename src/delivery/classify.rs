//! What becomes of a queued message after an attempt, decided from the attempt's result alone:
//! pure, so every rule of issue "Never lose a message" has a unit test.

use std::time::Duration;

use crate::error::{Class, RelayError, is_quota};
use crate::upstream::{Delivered, Phase, UpstreamError};

/// The wait after a throttling reply or a full set of upstream slots: short, and not an
/// attempt (Exchange's `432 4.3.2` clears as soon as another session of the mailbox ends).
pub(crate) const THROTTLED_WAIT: Duration = Duration::from_secs(30);
/// The wait after Exchange's daily quota refusal: its window rolls, it does not say when.
pub(crate) const QUOTA_WAIT: Duration = Duration::from_secs(60 * 60);

/// The next step for a message after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Next {
    /// Microsoft accepted it: forget it.
    Delivered,
    /// Refused for good: bounce it (the text says why).
    Bounce(String),
    /// Try again; `counts` says whether this was an attempt that counts towards the schedule.
    Retry { wait: Wait, counts: bool },
    /// The operator must fix the account: wait for it to recover (or the schedule).
    AccountProblem,
}

/// How long to wait before the next attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// The retry schedule's next value.
    Schedule,
    /// At most this long (shorter when the schedule says so).
    Short(Duration),
    /// This long.
    Exactly(Duration),
}

/// Classifies an attempt's result.
pub(crate) fn next(result: &Result<Delivered, RelayError>) -> Next {
    let error = match result {
        Ok(_) => return Next::Delivered,
        Err(e) => e,
    };
    if throttled(error) {
        return Next::Retry {
            wait: Wait::Short(THROTTLED_WAIT),
            counts: false,
        };
    }
    if let RelayError::Upstream(UpstreamError::Rejected { reply, .. }) = error
        && is_quota(reply)
    {
        return Next::Retry {
            wait: Wait::Exactly(QUOTA_WAIT),
            counts: false,
        };
    }
    match error.class() {
        Class::Permanent => Next::Bounce(error.to_string()),
        Class::Misconfigured => Next::AccountProblem,
        Class::Transient => Next::Retry {
            wait: Wait::Schedule,
            counts: true,
        },
    }
}

/// `432 4.3.2` (too many sessions of the mailbox), no free slot of our own, or a pacing limit of
/// the account: the message is fine and so is the account; it only has to wait its turn.
fn throttled(error: &RelayError) -> bool {
    match error {
        RelayError::Paced(reply) => reply.is_transient(),
        RelayError::Upstream(UpstreamError::Busy { .. }) => true,
        RelayError::Upstream(
            UpstreamError::Rejected { reply, .. } | UpstreamError::AuthRejected { reply, .. },
        ) => reply.code == 432 || reply.matches((4, 3, 2), ""),
        _ => false,
    }
}

/// The final dot went upstream and no verdict came back: Microsoft may have the message.
pub(crate) fn ambiguous(result: &Result<Delivered, RelayError>) -> bool {
    matches!(
        result,
        Err(RelayError::Upstream(
            UpstreamError::Timeout {
                phase: Phase::DataEnd,
                ..
            } | UpstreamError::Io {
                phase: Phase::DataEnd,
                ..
            }
        ))
    )
}

/// What a synchronous attempt's failure means for the client: `true` when the message should
/// be queued (a failure time or the operator can fix), `false` when its refusal is passed on.
pub(crate) fn queue_after_sync(result: &Result<Delivered, RelayError>) -> bool {
    !matches!(next(result), Next::Delivered | Next::Bounce(_))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reply::{Enhanced, Reply};
    use crate::upstream::UpstreamReply;

    #[expect(
        clippy::result_large_err,
        reason = "a test value, the shape `next` takes"
    )]
    fn rejected(code: u16, e: (u8, u16, u16), text: &str) -> Result<Delivered, RelayError> {
        Err(RelayError::Upstream(UpstreamError::Rejected {
            phase: Phase::DataEnd,
            reply: UpstreamReply {
                code,
                enhanced: Some(Enhanced(e.0, e.1, e.2)),
                text: text.into(),
            },
            recipient: None,
        }))
    }

    #[test]
    fn throttling_waits_briefly_and_does_not_count() {
        let short = Next::Retry {
            wait: Wait::Short(THROTTLED_WAIT),
            counts: false,
        };
        assert_eq!(
            next(&rejected(
                432,
                (4, 3, 2),
                "Concurrent connections limit exceeded"
            )),
            short
        );
        let busy = Err(RelayError::Upstream(UpstreamError::Busy {
            slots: 3,
            waited: Duration::from_secs(60),
        }));
        assert_eq!(next(&busy), short);
        let paced = Err(RelayError::Paced(Reply::with_text(
            451,
            Enhanced(4, 7, 0),
            "rate",
        )));
        assert_eq!(next(&paced), short);
    }

    #[test]
    fn the_daily_quota_waits_for_its_window_instead_of_bouncing() {
        let quota = rejected(
            554,
            (5, 2, 0),
            "STOREDRV.Submission.Exception:SubmissionQuotaExceededException",
        );
        assert_eq!(
            next(&quota),
            Next::Retry {
                wait: Wait::Exactly(QUOTA_WAIT),
                counts: false
            }
        );
        assert!(queue_after_sync(&quota));
    }

    #[test]
    fn a_refusal_about_the_message_bounces_and_is_passed_on_at_once() {
        let unknown = rejected(550, (5, 1, 1), "User unknown");
        assert!(matches!(next(&unknown), Next::Bounce(_)));
        assert!(!queue_after_sync(&unknown));
        let never = Err(RelayError::Paced(Reply::with_text(
            552,
            Enhanced(5, 5, 3),
            "split",
        )));
        assert!(matches!(next(&never), Next::Bounce(_)));
    }

    #[test]
    fn network_failures_follow_the_schedule_and_the_lost_verdict_is_ambiguous() {
        let lost = Err(RelayError::Upstream(UpstreamError::Io {
            phase: Phase::DataEnd,
            detail: "reset".into(),
        }));
        assert_eq!(
            next(&lost),
            Next::Retry {
                wait: Wait::Schedule,
                counts: true
            }
        );
        assert!(ambiguous(&lost));
        let before = Err(RelayError::Upstream(UpstreamError::Io {
            phase: Phase::DataBlock,
            detail: "reset".into(),
        }));
        assert!(!ambiguous(&before));
        assert!(queue_after_sync(&before));
    }

    #[test]
    fn an_operator_problem_waits_for_the_account() {
        let auth = Err(RelayError::Upstream(UpstreamError::AuthRejected {
            mechanism: crate::upstream::Mechanism::Xoauth2,
            reply: UpstreamReply {
                code: 535,
                enhanced: Some(Enhanced(5, 7, 139)),
                text: "SmtpClientAuthentication is disabled".into(),
            },
            challenge: None,
        }));
        assert_eq!(next(&auth), Next::AccountProblem);
        assert!(queue_after_sync(&auth));
        assert!(queue_after_sync(&Err(RelayError::NoRoute("gone".into()))));
    }
}
