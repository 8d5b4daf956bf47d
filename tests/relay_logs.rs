//! What the log says about failures, checked with the process-wide subscriber capturing every
//! line. One test only in this binary, so no other test's lines mix in.

mod common;

use common::*;

async fn one_message(w: &World) -> Reply {
    let mut c = w.logged_in().await;
    c.send_mail(MAILBOX, &["a@example.net"], &message("a", "b"))
        .await
}

#[tokio::test]
async fn known_failures_are_explained_once_in_the_log() {
    let log = LogCapture::start();
    let w = World::start().await;
    w.upstream.script(|s| {
        s.auth_reply = Some("535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant.".into())
    });
    one_message(&w).await.expect_code(451);
    one_message(&w).await.expect_code(451);
    let text = log.text();
    assert_eq!(
        text.matches("Set-CASMailbox -Identity <mailbox> -SmtpClientAuthenticationDisabled $false")
            .count(),
        1,
        "{text}"
    );
    assert_eq!(text.matches("message not delivered").count(), 2, "{text}");
    assert!(text.contains("same problem as explained earlier"), "{text}");
    assert!(
        text.contains("user=xenocept")
            || text.contains("user=\"xenocept\"")
            || text.contains("xenocept"),
        "{text}"
    );
    // After a success the explanation is given again when the problem returns.
    w.upstream.script(|s| s.auth_reply = None);
    one_message(&w).await.expect_code(250);
    assert!(log.text().contains("message delivered"));
    for secret in [CLIENT_SECRET, PASSWORD] {
        assert!(
            !log.text().contains(secret),
            "secret {secret} leaked into the log"
        );
    }
    for token in w.tokens.issued() {
        assert!(
            !log.text().contains(&token[..40]),
            "token leaked into the log"
        );
    }
}
