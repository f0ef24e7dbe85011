#!/usr/bin/env python3
"""Browser tests of the web console (issue 16), with Playwright driving Debian's Chromium.

    test_console.py BASE_URL OUTDIR [--topic T] [--group G] [--active-group G] [--only REGEX] [--update-docs]

BASE_URL is a broker's admin listener (http://127.0.0.1:PORT/). The console must serve a topic
with records in partition 0 (text, JSON and binary values; --topic, else the first topic with
records is used) and an inactive group with committed offsets (--group, else the first Empty
group with offsets). scripts/console-browser.sh starts a cluster, writes that data and runs this.

Checks: the page's headers (CSP directives, nosniff, a JavaScript type for modules); every
route renders with its heading focused, no console error (CSP violations included), no failed
request and no serious or critical axe violation (light and dark colour schemes), tables with
captions and scoped headers, a label for every control, no inline style; every link on those
pages is followed; group ids with quotes, markup and URL delimiters show as text; the keyboard
reaches the navigation, follows a link with Enter, the skip link works, and Escape closes a
dialog and gives focus back; messages are browsed as text, JSON and hex, by offset, by time and
newest first; auto-refresh (under Playwright's clock) runs on the overview and group pages every
10 s, keeps focus and opened details, stops while the page is hidden, and the topics page does
not refresh; with actions enabled, each action is run through its dialog and its effect read
back from /api/v1 (create a topic, a duplicate refused with its Kafka error name, add
partitions, set and remove a config override, delete the topic, reset the inactive group to the
latest then the earliest offsets, an active group's reset refused); with actions off, no action
control is shown and the API answers 403.

Screenshots go to OUTDIR/screenshots/; --update-docs also copies the main ones to
docs/console/*.png. Each check prints `ok NAME (Ns)` or `FAIL NAME: reason`; the last line is
`N passed, M failed`, and the exit status is 1 when M > 0.
"""

import argparse
import json
import re
import shutil
import sys
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
# The directives the console's Content-Security-Policy must hold (it may add more).
CSP = {"default-src": "'self'", "img-src": "'self' data:", "frame-ancestors": "'none'"}
DOC_SHOTS = ["overview", "topics", "topic", "messages", "groups", "group", "group-lag", "group-active", "dialog-reset-offsets"]
BLOCKING = ("serious", "critical")


class CheckFailed(Exception):
    pass


def need(cond, reason):
    if not cond:
        raise CheckFailed(reason)


def enc(s):
    return urllib.parse.quote(str(s), safe="")


def route(*segments, **query):
    """The hash route of segments, as the console builds it (percent-encoded segments)."""
    q = urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
    return "#/" + "/".join(enc(s) for s in segments) + (f"?{q}" if q else "")


class Api:
    """/api/v1 read from the test itself (not the browser), to check what the pages did."""

    def __init__(self, base):
        self.base = base.rstrip("/")

    def call(self, method, path, body=None, headers=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=15) as r:
                status, raw, headers = r.status, r.read(), dict(r.headers)
        except urllib.error.HTTPError as e:
            status, raw, headers = e.code, e.read(), dict(e.headers)
        try:
            return status, json.loads(raw or b"null"), headers
        except ValueError:
            return status, raw.decode(errors="replace"), headers

    def get(self, *segments, **query):
        q = urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        path = "/api/v1/" + "/".join(enc(s) for s in segments) + (f"?{q}" if q else "")
        status, body, _ = self.call("GET", path)
        need(status == 200, f"GET {path}: HTTP {status} {body}")
        return body

    def status(self, *segments):
        return self.call("GET", "/api/v1/" + "/".join(enc(s) for s in segments))[0]

    def until(self, what, fn, secs=15):
        """Polls fn() (a value or None) until it is not None; the change may still be spreading."""
        deadline = time.monotonic() + secs
        last = None
        while time.monotonic() < deadline:
            try:
                v = fn()
                if v is not None:
                    return v
            except CheckFailed as e:
                last = e
            time.sleep(0.25)
        raise CheckFailed(f"{what} not seen within {secs} s" + (f" ({last})" if last else ""))


class Console:
    """One browser page on the console, recording every problem it shows."""

    def __init__(self, browser, base, shots, scheme="light"):
        self.base = base.rstrip("/") + "/"
        self.shots = shots
        self.ctx = browser.new_context(viewport={"width": 1280, "height": 800}, color_scheme=scheme)
        self.page = self.ctx.new_page()
        self.page.set_default_timeout(15000)
        self.problems = []
        self.allowed = []  # (status, url regex) of error answers a check provokes on purpose
        self.requests = []
        p = self.page
        p.on("console", self._console)
        p.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        p.on("requestfailed", lambda r: self.problems.append(f"request failed: {r.method} {r.url} ({r.failure})"))
        p.on("response", self._response)
        p.on("request", lambda r: self.requests.append(r.url))

    def _console(self, msg):
        if msg.type != "error":
            return
        text = msg.text
        # Chromium logs every 4xx/5xx answer as a console error; a provoked one is allowed.
        if text.startswith("Failed to load resource") and any(f"status of {s}" in text for s, _ in self.allowed):
            return
        self.problems.append(f"console error: {text}")

    def _response(self, resp):
        if resp.status < 400:
            return
        if any(resp.status == s and re.search(u, resp.url) for s, u in self.allowed):
            return
        self.problems.append(f"HTTP {resp.status}: {resp.request.method} {resp.url}")

    def close(self):
        self.ctx.close()

    def clean(self, what):
        need(not self.problems, f"{what}: " + "; ".join(self.problems[:5]))

    def rendered(self):
        """Waits until the current hash is rendered (not a refresh: a route change or reload)."""
        self.page.wait_for_function(
            """() => { const m = document.getElementById('main');
                       return m && m.getAttribute('aria-busy') === 'false' && m.dataset.view === location.hash.slice(1); }"""
        )

    def renders(self):
        return int(self.page.evaluate("() => Number(document.getElementById('main').dataset.renders || 0)"))

    def rerendered(self, before):
        self.page.wait_for_function(
            """(n) => { const m = document.getElementById('main');
                        return m.getAttribute('aria-busy') === 'false' && Number(m.dataset.renders || 0) > n; }""",
            arg=before,
        )

    def open(self, hash_route):
        self.page.goto(self.base + hash_route)
        self.rendered()
        failed = self.page.locator("#page .notice.err")
        need(not failed.count(), f"{hash_route}: {failed.first.inner_text() if failed.count() else ''}")

    def heading(self):
        return self.page.inner_text("#page-title").strip()

    def focused_id(self):
        return self.page.evaluate("() => document.activeElement && document.activeElement.id")

    def shot(self, name):
        self.shots.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(self.shots / f"{name}.png"), full_page=True)

    def axe(self, what):
        res = Axe().run(self.page)
        bad = [v for v in res.response["violations"] if v.get("impact") in BLOCKING]
        need(
            not bad,
            f"axe on {what}: "
            + "; ".join(f"{v['id']} ({v['impact']}) at {v['nodes'][0]['target']}: {v['help']}" for v in bad[:5]),
        )

    def structure(self, what):
        """What axe leaves to judgement: captions, scoped headers, labels, one h1, landmarks."""
        faults = self.page.evaluate(
            """() => {
              const out = [];
              for (const t of document.querySelectorAll('main table')) {
                if (!t.caption || !t.caption.textContent.trim()) out.push('a table without a caption');
                for (const th of t.querySelectorAll('th')) if (!th.getAttribute('scope')) out.push('a <th> without scope');
              }
              for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea'))
                if (!el.labels || !el.labels.length) out.push(`a ${el.tagName.toLowerCase()} without <label for>: ${el.name}`);
              if (document.querySelectorAll('h1').length !== 1) out.push('not exactly one h1');
              for (const sel of ['header', 'nav', 'main', '#live[aria-live=polite]', 'a.skip'])
                if (!document.querySelector(sel)) out.push(`no ${sel}`);
              if (document.documentElement.lang !== 'en') out.push('no lang');
              if (document.querySelector('[style]')) out.push('an inline style attribute');
              return out;
            }"""
        )
        need(not faults, f"{what}: " + "; ".join(sorted(set(faults))))

    def live(self, kind):
        """Waits for the live region's message of kind (ok | err) and returns its text."""
        loc = self.page.locator(f"#live .msg.{kind}")
        loc.wait_for()
        return loc.inner_text()

    def dialog(self):
        loc = self.page.locator("dialog[open]")
        loc.wait_for()
        return loc


class Suite:
    def __init__(self, args):
        self.args = args
        self.base = args.base_url.rstrip("/") + "/"
        self.api = Api(args.base_url)
        self.out = Path(args.outdir)
        self.shots = self.out / "screenshots"
        self.passed = 0
        self.failed = 0
        self.only = re.compile(args.only) if args.only else None

    def check(self, name, fn, *a, always=False):
        if self.only and not always and not self.only.search(name):
            return None
        started = time.monotonic()
        try:
            value = fn(*a)
        except CheckFailed as e:
            self.failed += 1
            print(f"FAIL {name}: {e}", flush=True)
            return None
        except Exception as e:  # a Playwright timeout or a bug in the check: say where
            self.failed += 1
            tb = traceback.extract_tb(e.__traceback__)
            where = next((f"line {f.lineno}" for f in reversed(tb) if f.filename == __file__), "")
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            print(f"FAIL {name}: {type(e).__name__} at {where}: {first}", flush=True)
            return None
        self.passed += 1
        print(f"ok {name} ({time.monotonic() - started:.1f}s)", flush=True)
        return value if value is not None else True

    def console(self, scheme="light"):
        return Console(self.browser, self.base, self.shots, scheme)

    # ------------------------------------------------------------------------------------------
    # The data the checks use, found through the API.

    def discover(self):
        c = self.api.get("cluster")
        self.cluster = c
        self.actions = bool(c["actions_enabled"])
        topics = []
        after = None
        while True:
            page = self.api.get("topics", after=after, limit=500)
            topics += page["items"]
            after = page["next"]
            if not after:
                break
        self.topic = self.args.topic
        if not self.topic:
            for t in topics:
                if t["internal"]:
                    continue
                p0 = self.partition(t["name"], 0)
                if (p0["hw"] or 0) > (p0["log_start"] or 0):
                    self.topic = t["name"]
                    break
        need(self.topic, "no topic with records in partition 0 (pass --topic)")
        self.group = self.args.group
        self.groups = self.api.get("groups", limit=500)["items"]
        if not self.group:
            for g in self.groups:
                if g["state"] == "Empty" and self.api.get("groups", g["group_id"])["offsets"]:
                    self.group = g["group_id"]
                    break
        need(self.group, "no inactive group with committed offsets (pass --group)")
        self.active = self.args.active_group
        if not self.active:
            self.active = next((g["group_id"] for g in self.groups if g["state"] == "Stable" and g["members"]), None)
        if self.active:
            members = self.api.get("groups", self.active)["members"]
            need(members, f"group {self.active} has no members")
        self.new_topic = f"console-test-{int(time.time()) % 100000}"
        print(f"# topic {self.topic}, inactive group {self.group}, active group {self.active}, actions {'on' if self.actions else 'off'}", flush=True)

    def routes(self):
        t, g = self.topic, self.group
        return [
            ("overview", "#/", "Cluster overview"),
            ("topics", "#/topics", "Topics"),
            ("topics-prefix", route("topics", prefix=t[:3]), "Topics"),
            ("topic", route("topics", t), f"Topic {t}"),
            ("messages", route("topics", t, "messages", partition=0), f"Messages in {t}"),
            ("groups", "#/groups", "Consumer groups"),
            ("group", route("groups", g), f"Group {g}"),
            *([("group-active", route("groups", self.active), f"Group {self.active}")] if self.active else []),
            ("not-found", "#/no/such/page", "Page not found"),
        ]

    # ------------------------------------------------------------------------------------------

    def headers(self):
        status, body, headers = self.api.call("GET", "/")
        need(status == 200, f"GET /: HTTP {status}")
        h = {k.lower(): v for k, v in headers.items()}
        csp = h.get("content-security-policy") or ""
        directives = {d.split()[0]: " ".join(d.split()[1:]) for d in csp.split(";") if d.strip()}
        for k, v in CSP.items():
            need(directives.get(k) == v, f"GET /: Content-Security-Policy {csp!r} lacks {k} {v}")
        need("'unsafe-" not in csp, f"GET /: CSP {csp!r} allows inline or eval")
        need(h.get("x-content-type-options") == "nosniff", "GET /: no X-Content-Type-Options: nosniff")
        need(h.get("content-type", "").startswith("text/html"), f"GET /: Content-Type {h.get('content-type')}")
        req = urllib.request.Request(self.base + "assets/app.js")
        with urllib.request.urlopen(req, timeout=15) as r:
            ct = r.headers.get("Content-Type", "")
        need(re.match(r"(text|application)/javascript", ct), f"/assets/app.js: Content-Type {ct!r} (modules need a JavaScript type)")

    def route_check(self, name, hash_route, title, scheme="light"):
        con = self.console(scheme)
        try:
            if name == "not-found":
                con.allowed.append((404, r"."))  # nothing fetched, but allowed all the same
            con.open(hash_route)
            need(con.heading() == title, f"heading {con.heading()!r}, want {title!r}")
            need(con.focused_id() == "page-title", f"focus on {con.focused_id()!r} after the route change, not the h1")
            con.structure(name)
            con.axe(f"{name} ({scheme})")
            con.clean(name)
            con.shot(name if scheme == "light" else f"{name}-{scheme}")
            hrefs = con.page.eval_on_selector_all("a[href^='#/']", "els => els.map(e => e.getAttribute('href'))")
            return hrefs
        finally:
            con.close()

    def follow_links(self, hrefs):
        con = self.console()
        seen = 0
        try:
            con.open("#/")
            for href in sorted(set(hrefs))[:120]:
                con.open(href)
                need(con.heading() and con.heading() != "Page not found", f"{href}: heading {con.heading()!r}")
                con.clean(href)
                seen += 1
            # A link clicked (not typed): the route changes and focus moves to the new heading.
            con.open(route("topics", prefix=self.topic))
            con.page.locator("#page table a", has_text=re.compile(f"^{re.escape(self.topic)}$")).first.click()
            con.rendered()
            need(con.heading() == f"Topic {self.topic}", f"clicking {self.topic}: heading {con.heading()!r}")
            need(con.focused_id() == "page-title", "focus did not move to the h1 after a click")
            con.clean("click")
        finally:
            con.close()
        return seen

    def ids_as_text(self):
        """Group ids are client data: each page shows its id as text, whatever characters it holds."""
        con = self.console()
        try:
            for g in self.groups[:20]:
                gid = g["group_id"]
                con.open(route("groups", gid))
                need(con.heading() == f"Group {gid}", f"group {gid!r}: heading {con.heading()!r}")
                need(not con.page.locator("#page-title *, #crumbs li *:not(a)").count(), f"group {gid!r}: markup in the heading")
                crumb = con.page.locator("#crumbs li a").last.inner_text()
                need(crumb == gid, f"group {gid!r}: breadcrumb {crumb!r}")
            con.open(route("groups"))
            names = con.page.eval_on_selector_all("#page table tbody th a", "els => els.map(e => e.textContent)")
            missing = [g["group_id"] for g in self.groups[:50] if g["group_id"] and g["group_id"] not in names]
            need(not missing, f"groups not listed as text: {missing}")
            con.clean("ids")
        finally:
            con.close()
        return len(self.groups[:20])

    def keyboard(self):
        con = self.console()
        p = con.page
        try:
            con.open("#/")
            # From the focused heading, backwards: the navigation comes before the main content.
            in_nav = False
            for _ in range(6):
                p.keyboard.press("Shift+Tab")
                if p.evaluate("() => !!document.activeElement.closest('header nav')"):
                    in_nav = True
                    break
            need(in_nav, "Shift+Tab from the heading did not reach the navigation")
            for _ in range(4):
                if p.evaluate("() => document.activeElement.textContent.trim()") == "Topics":
                    break
                p.keyboard.press("Shift+Tab")
            need(p.evaluate("() => document.activeElement.textContent.trim()") == "Topics", "no Topics link in the tab order")
            p.keyboard.press("Enter")
            con.rendered()
            need(p.evaluate("() => location.hash") == "#/topics", f"Enter on Topics went to {p.evaluate('() => location.hash')}")
            need(con.focused_id() == "page-title", "focus not on the h1 after Enter")
            # The skip link: first in the tab order, it moves focus to the heading, hash unchanged.
            for _ in range(8):
                if con.focused_id() == "skip":
                    break
                p.keyboard.press("Shift+Tab")
            need(con.focused_id() == "skip", "the skip link is not reachable with the keyboard")
            need(p.evaluate("() => document.activeElement.getBoundingClientRect().top >= 0"), "the skip link is not shown when focused")
            p.keyboard.press("Enter")
            need(con.focused_id() == "page-title", "the skip link did not move focus to the heading")
            need(p.evaluate("() => location.hash") == "#/topics", "the skip link changed the route")
            # A visible focus indicator on a link.
            p.keyboard.press("Tab")
            outline = p.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
            need(outline not in ("none", ""), f"no visible focus outline on {p.evaluate('() => document.activeElement.outerHTML.slice(0, 80)')}")
            if self.actions:
                # Escape closes a dialog, and focus goes back to the button that opened it.
                btn = p.locator("button[data-key='create-topic']")
                btn.focus()
                p.keyboard.press("Enter")
                dlg = con.dialog()
                need(p.evaluate("() => !!document.activeElement.closest('dialog')"), "focus is not inside the open dialog")
                con.shot("dialog-create-topic")
                p.keyboard.press("Escape")
                dlg.wait_for(state="detached")
                need(p.evaluate("() => document.activeElement.dataset.key") == "create-topic", "focus did not return to “Create topic” after Escape")
            con.clean("keyboard")
        finally:
            con.close()

    def messages(self, fmt):
        con = self.console()
        p = con.page
        try:
            con.open(route("topics", self.topic, "messages", partition=0, offset=self.log_start(0)))
            p.select_option("select[name=format]", fmt)
            before = con.renders()
            p.get_by_role("button", name="Show").click()
            con.rerendered(before)
            need(f"format={fmt}" in p.evaluate("() => location.hash"), "the form did not put the format in the route")
            rows = p.locator("#page table tbody tr")
            need(rows.count() > 0, f"no records shown as {fmt}")
            values = p.eval_on_selector_all(
                "#page table tbody tr > td:nth-child(4) pre.data", "els => els.map(e => [e.className, e.textContent])"
            )
            need(values, "no value cells")
            if fmt == "hex":
                for cls, text in values:
                    need("enc-hex" in cls and re.fullmatch(r"[0-9a-fA-F\s:]*", text), f"value not hex: {text[:60]!r}")
            elif fmt == "json":
                pretty = [t for c, t in values if "enc-json" in c]
                need(pretty, "no JSON value in the first records")
                for t in pretty:
                    json.loads(t)
                need(any("\n" in t for t in pretty), "JSON values are not indented")
            elif fmt == "text":
                need(any("enc-text" in c for c, _ in values), "no value shown as text")
                need(not p.locator("#page td script, #page td b, #page td img").count(), "record data became markup")
            con.clean(fmt)
            con.shot(f"messages-{fmt}")
            if fmt == "text":
                # The default page (no offset) is the newest, and paging moves through the log.
                con.open(route("topics", self.topic, "messages", partition=0))
                con.shot("messages")
                older = p.get_by_role("link", name="← Older")
                if older.count():
                    older.click()
                    con.rendered()
                    need(p.locator("#page table tbody tr").count() > 0, "the older page is empty")
                # A start time instead of an offset.
                con.open(route("topics", self.topic, "messages", partition=0, timestamp=0))
                need(p.locator("#page table tbody tr").count() > 0, "nothing from time 0")
                con.clean("paging")
        finally:
            con.close()

    def partition(self, topic, partition):
        """One partition as the console's API shows it."""
        return self.api.get("topics", topic, "partitions", **{"from": partition, "limit": 1})["items"][0]

    def log_start(self, partition):
        return self.partition(self.topic, partition)["log_start"] or 0

    def refresh(self):
        con = self.console()
        p = con.page

        def calls(path):
            """A count of the page's requests to path, as a function."""
            return lambda: sum(1 for u in con.requests if urllib.parse.urlsplit(u).path == path)

        cluster_calls, topic_calls = calls("/api/v1/cluster"), calls("/api/v1/topics")

        def settle(fn, want, what):
            for _ in range(40):
                if fn() >= want:
                    return
                p.wait_for_timeout(100)
            raise CheckFailed(what)

        def visibility(hidden):
            p.evaluate(
                """(h) => {
                  Object.defineProperty(document, 'hidden', { configurable: true, get: () => h });
                  Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => (h ? 'hidden' : 'visible') });
                  document.dispatchEvent(new Event('visibilitychange'));
                }""",
                hidden,
            )

        try:
            p.clock.install()
            con.open("#/")
            n = cluster_calls()
            p.clock.run_for(10_500)
            settle(cluster_calls, n + 1, "the overview did not refresh after 10 s")
            visibility(True)
            p.wait_for_timeout(200)
            n = cluster_calls()
            p.clock.run_for(35_000)
            p.wait_for_timeout(300)
            need(cluster_calls() == n, f"{cluster_calls() - n} refreshes while the page was hidden")
            visibility(False)
            settle(cluster_calls, n + 1, "no refresh when the page became visible again")
            con.open("#/topics")
            n = topic_calls()
            p.clock.run_for(25_000)
            p.wait_for_timeout(300)
            need(topic_calls() == n, "the topics page refreshed itself (only overview and group pages do)")
            # The group page refreshes too, and keeps focus and an opened <details> as they were.
            group_path = "/api/v1/groups/" + enc(self.group)
            group_calls = calls(group_path)
            con.open(route("groups", self.group))
            summary = p.locator("#page details[data-key] > summary")
            if summary.count():
                summary.first.click()
                focus = "summary"
            else:
                p.locator("#page a[data-key]").first.focus()
                focus = "a"
            key = p.evaluate("() => document.activeElement.dataset.key")
            n = group_calls()
            p.clock.run_for(10_500)
            settle(group_calls, n + 1, "the group page did not refresh after 10 s")
            p.wait_for_function("() => document.getElementById('main').getAttribute('aria-busy') === 'false'")
            p.wait_for_timeout(300)
            need(p.evaluate("() => document.activeElement.dataset.key") == key, f"focus left the {focus} ({key}) on refresh")
            if focus == "summary":
                need(p.locator("#page details[data-key][open]").count() == 1, "the opened samples closed on refresh")
            con.clean("refresh")
        finally:
            con.close()

    def lag_chart(self):
        """The group's lag over time: once its coordinator holds two samples (one every 10 s),
        the group page draws them as a named inline SVG, with the samples in a table."""
        self.api.until(
            "two lag samples",
            lambda: True if len(self.api.get("groups", self.group)["lag_history"]["samples"]) >= 2 else None,
            secs=40,
        )
        con = self.console()
        try:
            con.open(route("groups", self.group))
            chart = con.page.locator("#page svg[role='img']")
            need(chart.count() == 1, f"{chart.count()} charts on the group page, want 1")
            label = chart.get_attribute("aria-label") or ""
            need("lag over the last" in label.lower(), f"the chart is named {label!r}")
            need(con.page.locator("#page svg[role='img'] polyline").count() == 1, "the chart has no line")
            con.axe("group lag chart")
            con.clean("lag-chart")
            con.shot("group-lag")
        finally:
            con.close()

    # ------------------------------------------------------------------------------------------
    # Actions, each through its dialog, checked through the API.

    def submit_dialog(self, con, button):
        before = con.renders()
        con.dialog().get_by_role("button", name=button, exact=True).click()
        con.page.locator("dialog[open]").wait_for(state="detached")
        return before

    def create_topic(self):
        con = self.console()
        p = con.page
        name = self.new_topic
        rf = min(3, len(self.cluster["brokers"]))
        try:
            con.open("#/topics")
            p.get_by_role("button", name="Create topic").click()
            dlg = con.dialog()
            dlg.get_by_label("Name").fill(name)
            dlg.get_by_label("Partitions").fill("2")
            dlg.get_by_label("Replication factor").fill(str(rf))
            dlg.get_by_label("Configuration (optional)").fill("retention.ms=3600000")
            con.shot("dialog-create-topic-filled")
            before = self.submit_dialog(con, "Create topic")
            msg = con.live("ok")
            need(name in msg, f"the result does not name the topic: {msg!r}")
            con.rerendered(before)
            t = self.api.until(f"topic {name}", lambda: self.api.get("topics", name) if self.api.status("topics", name) == 200 else None)
            need(t["partitions"] == 2 and t["replication_factor"] == rf, f"created with {t['partitions']} partitions, RF {t['replication_factor']}")
            cfg = {c["name"]: c for c in t["configs"]}
            need(cfg.get("retention.ms", {}).get("value") == "3600000", f"retention.ms is {cfg.get('retention.ms')}")
            # The same name again: refused, with the Kafka error name shown.
            con.allowed.append((400, r"/api/v1/topics$"))
            p.get_by_role("button", name="Create topic").click()
            dlg = con.dialog()
            dlg.get_by_label("Name").fill(name)
            self.submit_dialog(con, "Create topic")
            err = con.live("err")
            need("TOPIC_ALREADY_EXISTS" in err, f"the duplicate's error does not say TOPIC_ALREADY_EXISTS: {err!r}")
            con.shot("action-error")
            con.clean("create")
        finally:
            con.close()

    def add_partitions(self):
        con = self.console()
        p = con.page
        name = self.new_topic
        try:
            con.open(route("topics", name))
            p.get_by_role("button", name="Add partitions").click()
            dlg = con.dialog()
            dlg.get_by_label("New partition count").fill("4")
            before = self.submit_dialog(con, "Add partitions")
            con.live("ok")
            con.rerendered(before)
            self.api.until("4 partitions", lambda: True if self.api.get("topics", name)["partitions"] == 4 else None)
            need(p.locator("#page table").first.locator("tbody tr").count() == 4, "the page does not show 4 partitions")
            con.clean("add-partitions")
        finally:
            con.close()

    def set_config(self):
        con = self.console()
        p = con.page
        name = self.new_topic
        cfg_of = lambda: {c["name"]: c for c in self.api.get("topics", name)["configs"]}
        try:
            con.open(route("topics", name))
            p.locator("button[data-key='config:retention.ms']").click()
            dlg = con.dialog()
            dlg.get_by_label("Value").fill("7200000")
            before = self.submit_dialog(con, "Save")
            con.live("ok")
            con.rerendered(before)
            self.api.until("retention.ms=7200000", lambda: True if cfg_of()["retention.ms"]["value"] == "7200000" else None)
            need(cfg_of()["retention.ms"]["source"] == "DYNAMIC_TOPIC_CONFIG", "retention.ms is not a topic override")
            need(p.evaluate("() => document.activeElement.dataset.key") == "config:retention.ms", "focus did not return to the Edit button")
            # And back: "Remove override".
            p.locator("button[data-key='config:retention.ms']").click()
            before = self.submit_dialog(con, "Remove override")
            con.live("ok")
            con.rerendered(before)
            self.api.until("retention.ms override removed", lambda: True if cfg_of()["retention.ms"]["source"] != "DYNAMIC_TOPIC_CONFIG" else None)
            con.clean("config")
        finally:
            con.close()

    def delete_topic(self):
        con = self.console()
        p = con.page
        name = self.new_topic
        try:
            con.open(route("topics", name))
            p.get_by_role("button", name="Delete topic").click()
            dlg = con.dialog()
            dlg.get_by_role("button", name="Delete topic").click()
            need(con.page.locator("dialog[open]").count() == 1, "the dialog closed without the name typed")
            dlg.get_by_label("Type the topic name to confirm").fill(name)
            con.shot("dialog-delete-topic")
            self.submit_dialog(con, "Delete topic")
            con.live("ok")
            p.wait_for_function("() => location.hash === '#/topics'")
            con.rendered()
            self.api.until(f"{name} gone", lambda: True if self.api.status("topics", name) == 404 else None)
            need(not p.locator("#page table a", has_text=re.compile(f"^{re.escape(name)}$")).count(), "the deleted topic is still listed")
            con.clean("delete")
        finally:
            con.close()

    def reset_offsets(self):
        """Through the dialog, to the latest offsets and then to the earliest, read back each time."""
        con = self.console()
        p = con.page
        g = self.group
        state = self.api.get("groups", g)
        need(state["state"] in ("Empty", "Dead"), f"group {g} is {state['state']}, not inactive")
        bounds = {}
        for o in state["offsets"]:
            part = self.partition(o["topic"], o["partition"])
            bounds[(o["topic"], o["partition"])] = (part["log_start"] or 0, part["hw"])
        need(any(hw is not None and hw > start for start, hw in bounds.values()), f"group {g}: no partition with records, so a reset would prove nothing")

        def reset(to, pick):
            con.open(route("groups", g))
            p.get_by_role("button", name="Reset offsets").click()
            dlg = con.dialog()
            dlg.get_by_label(re.compile(f"^the {to} offset")).check()
            if to == "earliest":
                con.shot("dialog-reset-offsets")
            before = self.submit_dialog(con, "Reset offsets")
            con.live("ok")
            con.rerendered(before)

            def done():
                offs = self.api.get("groups", g)["offsets"]
                return True if all(o["committed"] == pick(bounds[(o["topic"], o["partition"])]) for o in offs) else None

            self.api.until(f"offsets at the {to}", done)

        try:
            reset("latest", lambda b: b[1])
            reset("earliest", lambda b: b[0])
            con.clean("reset")
        finally:
            con.close()

    def reset_refused(self):
        """An active group's coordinator refuses a reset; the page says why, nothing changes."""
        con = self.console()
        p = con.page
        g = self.active
        before = self.api.get("groups", g)["offsets"]
        try:
            con.allowed += [(400, r"/reset-offsets$"), (409, r"/reset-offsets$")]
            con.open(route("groups", g))
            p.get_by_role("button", name="Reset offsets").click()
            dlg = con.dialog()
            need(dlg.locator(".notice.warn").count(), "the dialog does not warn that the group is active")
            self.submit_dialog(con, "Reset offsets")
            err = con.live("err")
            need(re.search(r"[A-Z_]{6,}", err), f"the refusal names no error: {err!r}")
            need(self.api.get("groups", g)["offsets"] == before, "the active group's offsets changed")
            con.clean("refused")
            return err
        finally:
            con.close()

    def actions_off(self):
        con = self.console()
        try:
            for r in ("#/topics", route("topics", self.topic), route("groups", self.group)):
                con.open(r)
                need(not con.page.locator("#page button.primary, #page button.danger, #page button.secondary[data-key]").count(), f"{r}: action buttons shown with actions disabled")
            con.clean("actions-off")
        finally:
            con.close()
        status, body, _ = self.api.call(
            "POST", "/api/v1/topics", {"name": "console-refused", "partitions": 1, "replication_factor": 1, "configs": {}},
            {"Content-Type": "application/json", "X-Sluice-Console": "1"},
        )
        need(status == 403 and body.get("error") == "ACTIONS_DISABLED", f"POST /api/v1/topics with actions off: HTTP {status} {body}")

    # ------------------------------------------------------------------------------------------

    def run(self):
        with sync_playwright() as pw:
            self.browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
            print(f"# Chromium {self.browser.version}", flush=True)
            try:
                if not self.check("discover", self.discover, always=True):
                    return
                self.check("http-headers", self.headers)
                hrefs = []
                for name, r, title in self.routes():
                    got = self.check(f"route-{name}", self.route_check, name, r, title)
                    if isinstance(got, list):
                        hrefs += got
                for name, r, title in self.routes()[:7:3]:
                    self.check(f"route-{name}-dark", self.route_check, name, r, title, "dark")
                self.check("links-followed", self.follow_links, hrefs)
                self.check("ids-as-text", self.ids_as_text)
                self.check("keyboard", self.keyboard)
                for fmt in ("text", "json", "hex"):
                    self.check(f"messages-{fmt}", self.messages, fmt)
                self.check("auto-refresh", self.refresh)
                self.check("lag-chart", self.lag_chart)
                if self.actions:
                    if self.check("action-create-topic", self.create_topic):
                        self.check("action-add-partitions", self.add_partitions)
                        self.check("action-set-config", self.set_config)
                        self.check("action-delete-topic", self.delete_topic)
                    self.check("action-reset-offsets", self.reset_offsets)
                    if self.active:
                        self.check("action-reset-active-refused", self.reset_refused)
                else:
                    self.check("actions-disabled", self.actions_off)
            finally:
                self.browser.close()
        if self.args.update_docs:
            docs = Path(__file__).resolve().parents[2] / "docs" / "console"
            docs.mkdir(parents=True, exist_ok=True)
            for name in DOC_SHOTS:
                src = self.shots / f"{name}.png"
                if src.exists():
                    shutil.copy(src, docs / f"{name}.png")
            print(f"# screenshots copied to {docs}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("base_url")
    ap.add_argument("outdir")
    ap.add_argument("--topic", help="a topic with text, JSON and binary records in partition 0")
    ap.add_argument("--group", help="an inactive (Empty) group with committed offsets")
    ap.add_argument("--active-group", help="a group with members now (its page is checked too)")
    ap.add_argument("--only", help="run only the checks whose name matches this regex")
    ap.add_argument("--update-docs", action="store_true", help="copy the main screenshots to docs/console/")
    args = ap.parse_args()
    suite = Suite(args)
    suite.run()
    print(f"{suite.passed} passed, {suite.failed} failed", flush=True)
    sys.exit(1 if suite.failed else 0)


if __name__ == "__main__":
    main()
