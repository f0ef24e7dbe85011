//! The console's pages and scripts, compiled into the binary (`build.rs` embeds every file of
//! `broker/console/`): `GET /` is `index.html`, `GET /assets/<path>` the others. Each answer
//! carries an ETag (a hash of its bytes, made by `build.rs`), so a browser revalidates instead
//! of downloading again, and a Content-Security-Policy that allows only these files: no inline
//! script, no other origin, no framing.

use crate::http::{Request, Response};

/// `(path, bytes, ETag)` of every console file.
static FILES: &[(&str, &[u8], &str)] = include!(concat!(env!("OUT_DIR"), "/console_assets.rs"));

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

/// The answer for a console file, `None` for paths outside `/` and `/assets/` and for methods
/// other than GET (the console's router answers those).
pub fn serve(req: &Request, path: &[&str]) -> Option<Response> {
    let name = match path {
        _ if req.method != "GET" => return None,
        [] => "index.html".to_string(),
        ["assets", rest @ ..] if !rest.is_empty() => rest.join("/"),
        _ => return None,
    };
    let Some(&(_, bytes, etag)) = FILES.iter().find(|(p, _, _)| *p == name) else {
        return Some(Response::not_found());
    };
    let response = if req.header("if-none-match") == Some(etag) {
        Response::new(304, content_type(&name), Vec::new())
    } else {
        Response::new(200, content_type(&name), bytes)
    };
    Some(
        response
            .with_header("ETag", etag)
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
        assert!(FILES.iter().any(|(p, _, _)| *p == "index.html"), "the console has an index.html");
        for (path, bytes, _) in FILES {
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
