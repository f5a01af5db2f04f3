#!/usr/bin/env python3
"""Drives a real Chromium through Selenium WebDriver (Debian's chromium-driver) on
the peerdex dashboard and prints what it measured as one JSON object on stdout.

Run by tests/dashboard.rs, which starts the server, makes the users and the events,
and asserts on the figures; this script only loads, waits and measures. Every wait is
a WebDriverWait on a DOM condition with a generous deadline, never a fixed sleep.

    python3 tests/browser/dashboard.py --url http://127.0.0.1:PORT/ \
        --sizes 1024x768,1280x720,1920x1080 --users 40 --min-events 50 \
        --out target/dashboard [--reconnect]

One Chromium session serves every size: the viewport is set exactly through the
DevTools protocol (Emulation.setDeviceMetricsOverride), so a screenshot is exactly
WIDTHxHEIGHT.

Exit status 0 with the measurements; 2 with {"error": ...} when a condition was not
met in time (the page's text is included to show what it held instead).
"""

import argparse
import json
import os
import shutil
import sys
import tempfile

from selenium import webdriver
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait

CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_CANDIDATES = ["/usr/lib/chromium/chromium", "/usr/bin/chromium"]

# Flags Chromium needs as root in a container (no sandbox, no /dev/shm), and none of
# its background traffic: the page must work with no network beyond the dashboard.
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-extensions",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
]

# Measures the page in its current viewport; returns plain JSON values.
MEASURE_JS = r"""
const vw = window.innerWidth, vh = window.innerHeight;
const visible = (el) => {
  const cs = getComputedStyle(el);
  if (cs.display === "none" || cs.visibility === "hidden") return false;
  const r = el.getBoundingClientRect();
  return r.width > 0 && r.height > 0;
};
// An element's box clipped by every ancestor that clips its overflow: what is drawn.
const clipped = (el) => {
  const r = el.getBoundingClientRect();
  let left = r.left, right = r.right, top = r.top, bottom = r.bottom;
  for (let a = el.parentElement; a; a = a.parentElement) {
    const cs = getComputedStyle(a);
    if (cs.overflowX !== "visible" && a !== document.documentElement && a !== document.body) {
      const ar = a.getBoundingClientRect();
      left = Math.max(left, ar.left); right = Math.min(right, ar.right);
    }
    if (cs.overflowY !== "visible" && a !== document.documentElement && a !== document.body) {
      const ar = a.getBoundingClientRect();
      top = Math.max(top, ar.top); bottom = Math.min(bottom, ar.bottom);
    }
  }
  return { left, right, top, bottom };
};
const describe = (el) => {
  let s = el.tagName.toLowerCase();
  if (el.id) s += "#" + el.id;
  const c = el.getAttribute("class");
  if (c) s += "." + c.trim().split(/\s+/).join(".");
  const t = (el.textContent || "").trim().slice(0, 40);
  return t ? s + " \"" + t + "\"" : s;
};

// 1. Network labels: every drawn text of the picture, pairwise.
const labels = [...document.querySelectorAll("#net text")].filter(visible)
  .map((t) => ({ text: t.textContent, r: t.getBoundingClientRect() }));
const overlaps = [];
for (let i = 0; i < labels.length; i++) {
  for (let j = i + 1; j < labels.length; j++) {
    const a = labels[i].r, b = labels[j].r;
    const w = Math.min(a.right, b.right) - Math.max(a.left, b.left);
    const h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
    if (w > 0.5 && h > 0.5) overlaps.push([labels[i].text, labels[j].text]);
  }
}
const net = document.getElementById("net");
const netBox = net ? net.getBoundingClientRect() : null;
const outsideNet = netBox ? labels.filter((l) => l.r.left < netBox.left - 0.5 || l.r.right > netBox.right + 0.5
  || l.r.top < netBox.top - 0.5 || l.r.bottom > netBox.bottom + 0.5).map((l) => l.text) : [];

// 2. Nothing drawn past the right edge; no horizontal scrolling anywhere.
const overflow = [];
for (const el of document.body.querySelectorAll("*")) {
  if (!visible(el)) continue;
  const c = clipped(el);
  if (c.right <= c.left || c.bottom <= c.top) continue;   // clipped away entirely
  if (c.right > vw + 0.5) overflow.push(describe(el) + " right=" + Math.round(c.right));
}
const scrollers = [];
for (const el of document.querySelectorAll("section, section *")) {
  const cs = getComputedStyle(el);
  // Scrolling boxes only: a clipping one (overflow: hidden, with ellipsis) is meant.
  if ((cs.overflowX === "auto" || cs.overflowX === "scroll") && el.scrollWidth > el.clientWidth + 1)
    scrollers.push(describe(el) + " " + el.scrollWidth + ">" + el.clientWidth);
}
const tables = [...document.querySelectorAll("table")].filter(visible).map((t) => {
  const box = t.closest("section").getBoundingClientRect(), r = t.getBoundingClientRect();
  return { right: r.right, box_right: box.right, width: r.width, box_width: box.width };
});

// 3. Feed rows: height in lines of the row's own text.
const rows = [...document.querySelectorAll("#feed li.event")].filter(visible).map((li) => {
  const cs = getComputedStyle(li);
  const lh = parseFloat(getComputedStyle(li.querySelector(".body") || li).lineHeight);
  const inner = li.getBoundingClientRect().height - parseFloat(cs.paddingTop) - parseFloat(cs.paddingBottom)
    - parseFloat(cs.borderTopWidth) - parseFloat(cs.borderBottomWidth);
  return { lines: inner / lh, text: li.textContent.slice(0, 80) };
});
const ids = [...document.querySelectorAll("#feed li.event")].map((li) => li.dataset.id || "");

// 4. The header: how many rows its items take.
const tops = [];
const header = document.querySelector("header");
for (const el of header ? header.children : []) {
  if (!visible(el)) continue;
  const r = el.getBoundingClientRect();
  if (!tops.some((t) => Math.abs(t - r.top) < r.height / 2)) tops.push(r.top);
}

// Long names: ellipsised with the whole name in a tooltip.
const longNames = [...document.querySelectorAll("[data-user]")]
  .filter((e) => String(e.dataset.user).length > 60)
  .map((e) => {
    const withTitle = e.querySelector("[title]") || e;
    return { title_ok: [...e.querySelectorAll("[title]"), e].some((x) => x.getAttribute("title") && x.getAttribute("title").includes(e.dataset.user)), tag: describe(withTitle) };
  });

return {
  viewport: [vw, vh],
  doc_scroll_width: document.documentElement.scrollWidth,
  users: [...document.querySelectorAll("tr.user[data-user]")].map((e) => e.dataset.user),
  files: [...document.querySelectorAll("li.file[data-file]")].map((e) => e.dataset.file),
  labels: labels.length,
  label_texts: labels.map((l) => l.text),
  label_overlaps: overlaps,
  labels_outside_picture: outsideNet,
  overflow_right: overflow.slice(0, 20),
  overflow_count: overflow.length,
  scrollers: scrollers.slice(0, 20),
  tables: tables,
  feed_rows: rows.length,
  feed_max_lines: rows.reduce((m, r) => Math.max(m, r.lines), 0),
  feed_tallest: rows.reduce((m, r) => (r.lines > m.lines ? r : m), { lines: 0, text: "" }).text,
  feed_ids: ids,
  header_rows: tops.length,
  long_names: longNames,
  conn: (document.getElementById("conn") || {}).textContent || "",
};
"""


def parse_size(s):
    w, h = s.lower().split("x")
    return int(w), int(h)


def chromium_binary():
    for path in CHROMIUM_CANDIDATES:
        if os.access(path, os.X_OK):
            return path
    return shutil.which("chromium")


def start_browser(profile):
    opts = webdriver.ChromeOptions()
    binary = chromium_binary()
    if binary:
        opts.binary_location = binary
    for flag in CHROMIUM_FLAGS:
        opts.add_argument(flag)
    opts.add_argument("--user-data-dir=" + profile)
    opts.add_argument("--window-size=1920,1080")
    # The path is given, so Selenium Manager never looks for a driver on the network.
    service = Service(executable_path=CHROMEDRIVER)
    return webdriver.Chrome(service=service, options=opts)


def set_viewport(driver, width, height):
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
    )


class Failed(Exception):
    pass


def wait(driver, timeout, what, js):
    """Waits until the JavaScript expression `js` is truthy; `what` names it."""
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.1).until(
            lambda d: d.execute_script("return (" + js + ");")
        )
    except TimeoutException:
        raise Failed("timed out after %ss waiting for %s" % (timeout, what)) from None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--sizes", default="1280x720", help="comma-separated WIDTHxHEIGHT")
    ap.add_argument("--out", required=True, help="folder for the screenshots")
    ap.add_argument("--users", type=int, default=1, help="user rows to wait for")
    ap.add_argument("--files", type=int, default=0, help="file items to wait for")
    ap.add_argument("--min-events", type=int, default=1, help="feed entries to wait for")
    ap.add_argument("--reconnect", action="store_true",
                    help="after the sizes: reopen the event stream and wait for new events")
    ap.add_argument("--timeout", type=float, default=60.0)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    profile = tempfile.mkdtemp(prefix="peerdex-chromium-")
    driver = None
    out = {"sizes": []}
    try:
        driver = start_browser(profile)
        driver.set_script_timeout(args.timeout)
        sizes = [parse_size(s) for s in args.sizes.split(",") if s]
        set_viewport(driver, *sizes[0])
        driver.get(args.url)
        wait(driver, args.timeout, "%d user rows" % args.users,
             "document.querySelectorAll('tr.user[data-user]').length >= %d" % args.users)
        wait(driver, args.timeout, "%d file items" % args.files,
             "document.querySelectorAll('li.file[data-file]').length >= %d" % args.files)
        wait(driver, args.timeout, "%d feed entries (li.event)" % args.min_events,
             "document.querySelectorAll('#feed li.event').length >= %d" % args.min_events)
        out["events_on_load"] = driver.execute_script(
            "return document.querySelectorAll('#feed li.event').length;")
        for (w, h) in sizes:
            set_viewport(driver, w, h)
            # The page redraws its picture for the new width (it marks what it drew for).
            wait(driver, args.timeout, "the picture redrawn for %dx%d" % (w, h),
                 "innerWidth === %d && (!document.getElementById('net') || "
                 "!('drawnFor' in document.getElementById('net').dataset) || "
                 "document.getElementById('net').dataset.drawnFor === String(document.getElementById('net').clientWidth))" % w)
            m = driver.execute_script(MEASURE_JS)
            shot = os.path.join(args.out, "dashboard-%dx%d.png" % (w, h))
            driver.save_screenshot(shot)
            m["size"] = "%dx%d" % (w, h)
            m["screenshot"] = shot
            out["sizes"].append(m)
        if args.reconnect:
            before = driver.execute_script(
                "return Math.max(0, ...[...document.querySelectorAll('#feed li.event')]"
                ".map((li) => Number(li.dataset.seq) || 0));")
            wait(driver, args.timeout, "the page's reconnect hook",
                 "window.peerdex && typeof window.peerdex.reconnect === 'function'")
            driver.execute_script("window.peerdex.reconnect();")
            wait(driver, args.timeout, "the stream live again and an event newer than #%d" % before,
                 "document.getElementById('conn').dataset.state === 'live' && "
                 "[...document.querySelectorAll('#feed li.event')].some((li) => Number(li.dataset.seq) > %d)"
                 % before)
            seqs = driver.execute_script(
                "return [...document.querySelectorAll('#feed li.event')].map((li) => Number(li.dataset.seq));")
            out["reconnect"] = {"seq_before": before, "seqs": seqs,
                                "reconnects": driver.execute_script("return window.peerdex.reconnects;")}
        out["console_errors"] = [
            e.get("message", "") for e in driver.get_log("browser") if e.get("level") == "SEVERE"
        ] if hasattr(driver, "get_log") else []
    except (Failed, WebDriverException) as e:
        out["error"] = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if driver is not None:
            try:
                out["page_text"] = driver.execute_script("return document.body.innerText;")[:4000]
            except WebDriverException:
                pass
        print(json.dumps(out))
        return 2
    finally:
        if driver is not None:
            try:
                driver.quit()
            except WebDriverException:
                pass
        shutil.rmtree(profile, ignore_errors=True)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
