//! A mocked API server for reconcile tests (kube-rs controller-rs's pattern, on tower-test):
//! a scenario is the list of requests a reconcile branch must make, in order, each with the
//! answer to give. A request that is not the next expected one fails the test; so does a
//! missing one. Only for the branches' request sequences: the operator's behaviour against a
//! real API server is proven by the test bed's end-to-end scenarios.

use std::time::Duration;

use http::{Request, Response};
use kube::client::Body;
use serde_json::Value;

/// Makes an answer (status, body) from a request's body and query.
pub type Answer = Box<dyn FnOnce(&Value, &str) -> (u16, Value) + Send>;

/// One expected request and its answer.
pub struct Expect {
    pub method: &'static str,
    pub path: String,
    pub answer: Answer,
}

impl Expect {
    pub fn new(
        method: &'static str,
        path: impl Into<String>,
        answer: impl FnOnce(&Value, &str) -> (u16, Value) + Send + 'static,
    ) -> Expect {
        Expect { method, path: path.into(), answer: Box::new(answer) }
    }

    /// Answers with the request's own body (what server-side apply returns, near enough).
    pub fn echo(method: &'static str, path: impl Into<String>) -> Expect {
        Expect::new(method, path, |body, _| (200, body.clone()))
    }

    /// Answers 404 Not Found.
    pub fn not_found(method: &'static str, path: impl Into<String>) -> Expect {
        Expect::new(method, path, |_, _| {
            let status = serde_json::json!({"kind": "Status", "apiVersion": "v1",
                "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"});
            (404, status)
        })
    }
}

/// A request as it was made (its method and path were the expected ones).
#[derive(Clone, Debug)]
pub struct Seen {
    pub query: String,
    pub body: Value,
}

/// A client whose API server is `scenario`; await the handle for the requests it saw (it
/// panics on an unexpected or missing request).
pub fn client(scenario: Vec<Expect>) -> (kube::Client, tokio::task::JoinHandle<Vec<Seen>>) {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let server = tokio::spawn(async move {
        let mut seen = Vec::new();
        for expect in scenario {
            let next = tokio::time::timeout(Duration::from_secs(10), handle.next_request()).await;
            let (req, send) = next
                .unwrap_or_else(|_| {
                    panic!("no request; expected {} {}", expect.method, expect.path)
                })
                .expect("the client hung up");
            let (method, path) = (req.method().to_string(), req.uri().path().to_string());
            let query = req.uri().query().unwrap_or("").to_string();
            assert_eq!(
                (method.as_str(), path.as_str()),
                (expect.method, expect.path.as_str()),
                "unexpected request (after {} expected ones)",
                seen.len()
            );
            let bytes = req.into_body().collect_bytes().await.expect("a body");
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let (status, answer) = (expect.answer)(&body, &query);
            let response = Response::builder()
                .status(status)
                .body(Body::from(serde_json::to_vec(&answer).expect("json")))
                .expect("a response");
            send.send_response(response);
            seen.push(Seen { query, body });
        }
        seen
    });
    (kube::Client::new(service, "default"), server)
}

/// A reconcile context on `client`.
pub fn context(client: kube::Client) -> crate::controller::Context {
    crate::controller::Context {
        client,
        domain: "cluster.local".into(),
        metrics: Default::default(),
        reporter: kube::runtime::events::Reporter { controller: "test".into(), instance: None },
    }
}
