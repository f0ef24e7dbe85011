//! The console's pages and scripts, compiled into the binary (`build.rs` embeds every file of
//! `broker/console/`): `GET /` is `index.html`, `GET /assets/<path>` the others. Each answer
//! carries an ETag (a hash of its bytes), so a browser revalidates instead of downloading
//! again, and a Content-Security-Policy that allows only these files: no inline script, no
//! other origin, no framing.

use std::sync::OnceLock;

use crate::http::{Request, Response};

static FILES: &[(&str, &[u8])] = include!(concat!(env!("OUT_DIR"), "/console_assets.rs"));

const CSP: &str = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

/// FNV-1a of each file, computed once.
fn etags() -> &'static Vec<String> {
    static ETAGS: OnceLock<Vec<String>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        FILES
            .iter()
            .map(|(_, bytes)| {
                let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                    (h ^ *b as u64).wrapping_mul(0x0000_0100_0000_01b3)
                });
                format!("\"{hash:016x}\"")
            })
            .collect()
    })
}

/// The answer for a console file, `None` for paths outside `/` and `/assets/`.
pub fn serve(req: &Request, path: &[&str]) -> Option<Response> {
    let name = match path {
        [] => "index.html".to_string(),
        ["assets", rest @ ..] if !rest.is_empty() => rest.join("/"),
        _ => return None,
    };
    if req.method != "GET" {
        return Some(Response::text(405, "method not allowed\n"));
    }
    let Some(i) = FILES.iter().position(|(p, _)| *p == name) else {
        return Some(Response::not_found());
    };
    let etag = &etags()[i];
    let response = if req.header("if-none-match") == Some(etag.as_str()) {
        Response::new(304, content_type(&name), Vec::new())
    } else {
        Response::new(200, content_type(&name), FILES[i].1)
    };
    Some(
        response
            .with_header("ETag", etag.clone())
            .with_header("Cache-Control", "no-cache")
            .with_header("Content-Security-Policy", CSP)
            .with_header("X-Content-Type-Options", "nosniff")
            .with_header("Referrer-Policy", "no-referrer"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_console_file_is_served() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("console");
        assert!(FILES.iter().any(|(p, _)| *p == "index.html"), "the console has an index.html");
        for (path, bytes) in FILES {
            let on_disk = std::fs::read(dir.join(path)).unwrap();
            assert_eq!(&on_disk, bytes, "{path} is embedded as it is on disk");
            let req = Request { method: "GET".into(), ..Default::default() };
            let segments: Vec<&str> = std::iter::once("assets").chain(path.split('/')).collect();
            let r = serve(&req, &segments).unwrap();
            assert_eq!(r.status, 200, "{path}");
            let etag = r.headers.iter().find(|(n, _)| *n == "ETag").unwrap().1.clone();
            let again = Request {
                method: "GET".into(),
                headers: vec![("if-none-match".into(), etag)],
                ..Default::default()
            };
            assert_eq!(serve(&again, &segments).unwrap().status, 304, "{path}");
        }
        assert_eq!(
            serve(&Request { method: "GET".into(), ..Default::default() }, &[]).unwrap().status,
            200
        );
        let missing =
            serve(&Request { method: "GET".into(), ..Default::default() }, &["assets", "nope.js"]);
        assert_eq!(missing.unwrap().status, 404);
    }
}
