//! What `xoauth-relay queue …` asks of the running daemon: list and show the queue, retry,
//! hold, release, delete or bounce a message. Every change is written to the spool before it
//! is answered, and logged (the ID only: it was checked to be one of ours).

use super::{Delivery, Queue};
use crate::BoxFuture;
use crate::spool::Hold;
use crate::spool::control::{QueueOps, Request, Response};

impl QueueOps for Delivery {
    fn call<'a>(&'a self, request: Request) -> BoxFuture<'a, Response> {
        Box::pin(self.answer(request))
    }
}

impl Delivery {
    async fn answer(&self, request: Request) -> Response {
        match request {
            Request::List => {
                let messages = self.queue.all();
                let summary = format!("{} messages queued or held", messages.len());
                Response {
                    messages,
                    ..Response::done(summary)
                }
            }
            Request::Show { id } => match self.queue.get(&id) {
                Some(meta) => Response {
                    messages: vec![meta],
                    ..Response::done(String::new())
                },
                None => Response::error(format!("no message {id} in the queue")),
            },
            Request::Retry { id: None } => {
                let n = self.queue.due_now(None, self.clock.now_unix());
                tracing::info!(
                    messages = n,
                    "queue retry --all: every waiting message is due now"
                );
                Response::done(format!("{n} messages will be retried now"))
            }
            Request::Retry { id: Some(id) } => {
                self.change(&id, "retry", |m, now| {
                    m.next_attempt = now;
                })
                .await
            }
            Request::Hold { id } => {
                self.change(&id, "hold", |m, _| {
                    m.hold = Some(Hold::Operator);
                })
                .await
            }
            Request::Release { id } => {
                self.change(&id, "release", |m, now| {
                    m.hold = None;
                    m.next_attempt = now;
                })
                .await
            }
            Request::Delete { id } => self.delete(&id).await,
            Request::Bounce { id } => self.bounce(&id).await,
        }
    }

    /// Applies `change` to a message that is not being sent right now, writes it, answers.
    async fn change(
        &self,
        id: &str,
        what: &str,
        change: impl FnOnce(&mut crate::spool::Meta, u64),
    ) -> Response {
        let now = self.clock.now_unix();
        let Some(before) = self.queue.checkout(id) else {
            return self.not_now(id);
        };
        let mut meta = before.clone();
        change(&mut meta, now);
        if let Err(e) = self.write(&meta).await {
            self.queue.put(before);
            tracing::error!(queue_id = id, command = what, error = %e, "queue command failed: the message's record could not be written");
            return Response::error(format!("could not update {id}: {e}"));
        }
        self.queue.put(meta);
        tracing::info!(queue_id = id, command = what, "queue command carried out");
        Response::done(format!("{id}: {what} done"))
    }

    /// Deleting keeps a copy in `failed/` like every message the relay gives up on.
    async fn delete(&self, id: &str) -> Response {
        let Some(mut meta) = self.take(id) else {
            return self.not_now(id);
        };
        meta.failure = Some("deleted by an operator (queue delete)".into());
        let failed = meta.clone();
        if let Err(e) = self.on_spool(move |s| s.fail(&failed)).await {
            self.queue.put(meta);
            return Response::error(format!("could not delete {id}: {e}"));
        }
        self.queue.failed(&meta.account);
        Queue::count(&self.queue.counters.deleted);
        tracing::warn!(queue_id = id, account = %meta.account, "queued message deleted by an operator; a copy is kept in failed/");
        Response::done(format!(
            "{id} deleted (a copy is in the spool's failed/ directory)"
        ))
    }

    async fn bounce(&self, id: &str) -> Response {
        let Some(meta) = self.take(id) else {
            return self.not_now(id);
        };
        let why = "returned by an operator (queue bounce)".to_string();
        self.give_up(meta, why, None).await;
        Response::done(format!(
            "{id} bounced to its sender (a copy is in the spool's failed/ directory)"
        ))
    }

    /// Removes a message that is not running from the index, for a command that ends it.
    fn take(&self, id: &str) -> Option<crate::spool::Meta> {
        if self.queue.is_running(id) {
            return None;
        }
        self.queue.remove(id)
    }

    fn not_now(&self, id: &str) -> Response {
        match self.queue.is_running(id) {
            true => Response::error(format!(
                "{id} is being sent right now; try again in a moment"
            )),
            false => Response::error(format!("no message {id} in the queue")),
        }
    }
}
