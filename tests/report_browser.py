#!/usr/bin/python3
"""Opens a siamese report in Debian's headless Chromium (through
chromium-driver and python3-selenium) and checks it as a reader would see
it: no console errors, the expected figures present in the DOM with a real
size, every thumbnail decoded, the hover readout answering a real mouse
move, and a screenshot that is not blank.

usage: report_browser.py REPORT.html SCREENSHOT.png --figures id,id,...
           [--sections id,...] [--missing N] [--thumbs N] [--series FIG=N]
           [--points FIG=N] [--frames N] [--rows FIG=N] [--imgs FIG=N[xW]] [--absent id,...]
           [--next REPORT.html SCREENSHOT.png ...]
Several reports (each with its own checks, separated by --next) share one
browser: starting Chromium costs more than checking a page. Prints each
failed check and ends with "N passed, N failed".
"""
import argparse
import os
import shutil
import sys
import tempfile

from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By

passed = failed = 0
page = ""  # the report being checked, named in failures


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print("FAIL: %s: %s" % (page, what), file=sys.stderr)


def check_report(driver, a):
    """Every check of one report; the window is reset for each."""
    global page
    page = os.path.basename(a.report)
    driver.set_window_size(1280, 1600)
    driver.get("file://" + os.path.abspath(a.report))
    check(driver.execute_script("return document.readyState") == "complete", "page loaded")
    check("siamese report" in driver.title, "title: %r" % driver.title)

    for fid in filter(None, a.figures.split(",")):
        r = driver.execute_script(
            "var f=document.querySelector('figure[data-figure=\"'+arguments[0]+'\"]');"
            "if(!f)return null;var s=f.querySelector('svg');if(!s)return [0,0,0];"
            "var b=s.getBoundingClientRect();return [b.width,b.height,s.querySelectorAll('*').length];", fid)
        check(r is not None and r[0] > 200 and r[1] > 150 and r[2] > 20,
              "figure %s: an svg with a real size and content (%s)" % (fid, r))
    for fid in filter(None, a.absent.split(",")):
        n = driver.execute_script("return document.querySelectorAll('[data-figure=\"'+arguments[0]+'\"],"
                                  "section[data-panel=\"'+arguments[0]+'\"]').length", fid)
        check(n == 0, "figure or section %s absent (%d)" % (fid, n))
    for sid in filter(None, a.sections.split(",")):
        n = driver.execute_script("return document.querySelectorAll('section[data-panel=\"'+arguments[0]+'\"]')"
                                  ".length", sid)
        check(n >= 1, "section %s present" % sid)
    if a.missing >= 0:
        n = driver.execute_script("return document.querySelectorAll('.missing').length")
        check(n >= a.missing if a.missing > 0 else n == 0, "missing notes: %d (want %s)" %
              (n, ">= %d" % a.missing if a.missing else "none"))
    imgs = driver.execute_script("return Array.from(document.images).map(function(i){"
                                 "return [i.complete, i.naturalWidth, i.src.slice(0, 22)];})")
    check(all(i[0] and i[1] > 0 and i[2] == "data:image/png;base64," for i in imgs),
          "every image is an embedded PNG that decoded (%d images)" % len(imgs))
    if a.thumbs >= 0:
        marks = driver.execute_script("return [document.querySelectorAll('[data-figure=retrieval] .thumb').length,"
                                      "document.querySelectorAll('[data-figure=retrieval] .thumb.right').length,"
                                      "document.querySelectorAll('[data-figure=retrieval] .thumb.wrong').length]")
        check(marks[0] == a.thumbs and marks[1] + marks[2] == a.thumbs - a.thumbs // 9,
              "retrieval: %d thumbnails, %d right, %d wrong" % tuple(marks))
    ext = driver.execute_script("return Array.from(document.querySelectorAll('[src],[href]')).filter(function(e){"
                                "var u=e.getAttribute('src')||e.getAttribute('href');"
                                "return !(u.startsWith('data:')||u.startsWith('#'));}).length")
    check(ext == 0, "no external resources (%d)" % ext)
    for spec in a.series:
        fid, n = spec.split("=")
        got = driver.execute_script("var s=document.querySelector('figure[data-figure=\"'+arguments[0]+'\"] svg');"
                                    "return s?JSON.parse(s.getAttribute('data-series')).length:-1;", fid)
        check(got == int(n), "figure %s has %s hover series (%d)" % (fid, n, got))

    for spec in a.legend:
        fid, n = spec.split("=")
        got = driver.execute_script("return document.querySelectorAll('figure[data-figure=\"'+arguments[0]+"
                                    "'\"] text.legend').length", fid)
        check(got == int(n), "figure %s has %s legend entries (%d)" % (fid, n, got))
    for spec in a.contains:
        fid, text = spec.split("=", 1)
        got = driver.execute_script("var c=document.querySelector('[data-figure=\"'+arguments[0]+'\"],"
                                    "section[data-panel=\"'+arguments[0]+'\"]');return c?c.textContent:'';", fid)
        check(text in got, "figure %s's text contains %r" % (fid, text))

    for spec in a.points:  # each hover series holds N points, or the map N dots
        fid, n = spec.split("=")
        got = driver.execute_script(
            "var s=document.querySelector('figure[data-figure=\"'+arguments[0]+'\"] svg');if(!s)return null;"
            "var d=s.querySelectorAll('path.dots');if(d.length)return [Array.from(d).reduce(function(t,p){"
            "return t+(p.getAttribute('d').match(/M/g)||[]).length;},0)];"
            "return JSON.parse(s.getAttribute('data-series')).map(function(se){return se.x.length;});", fid)
        check(got and all(k == int(n) for k in got), "figure %s: %s points in each series (%s)" % (fid, n, got))
    if a.frames >= 0:
        got = driver.execute_script("return Array.from(document.querySelectorAll('[data-figure=tracking-frames] "
                                    "figure.frame img')).map(function(i){return i.complete?i.naturalWidth:0;})")
        check(len(got) == a.frames and all(w > 0 for w in got), "tracking: %d frames decoded (%s)" % (a.frames, got))
    for spec in a.imgs:  # pictures inside a figure: how many, all decoded, their width
        fid, n = spec.split("=")
        n, _, width = n.partition("x")
        got = driver.execute_script("var f=document.querySelector('[data-figure=\"'+arguments[0]+'\"]');"
                                    "return f?Array.from(f.querySelectorAll('img')).map(function(i){"
                                    "return i.complete?i.naturalWidth:0;}):null;", fid)
        check(got is not None and len(got) == int(n) and all(w > 0 and (not width or w == int(width)) for w in got),
              "figure %s: %s pictures decoded%s (%s)" % (fid, n, " %s px wide" % width if width else "", got))
    for spec in a.rows:
        tid, n = spec.split("=")
        got = driver.execute_script("return document.querySelectorAll('table[data-figure=\"'+arguments[0]+"
                                    "'\"] tr').length-1", tid)
        check(got == int(n), "table %s has %s data rows (%d)" % (tid, n, got))

    # Hover: a real mouse move over the loss chart fills its readout.
    svg = driver.find_elements(By.CSS_SELECTOR, "figure[data-figure=loss] svg")
    if svg:
        driver.execute_script("arguments[0].scrollIntoView({block:'center'})", svg[0])
        ActionChains(driver).move_to_element_with_offset(svg[0], 30, 0).perform()
        txt = driver.execute_script("return document.querySelector('figure[data-figure=loss] .readout')"
                                    ".textContent")
        check(txt.startswith("step ") and "loss" in txt, "hover readout: %r" % txt)
        driver.execute_script("window.scrollTo(0, 0)")

    errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    check(not errors, "no console errors: %s" % errors[:3])

    if a.full:
        h = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1280, min(h + 100, 16000))
    driver.save_screenshot(a.screenshot)
    img = Image.open(a.screenshot).convert("RGB")
    small = img.resize((img.width // 4, img.height // 4))
    colours = len(set(small.getdata()))
    nonwhite = sum(1 for p in small.getdata() if sum(p) < 720) / (small.width * small.height)
    check(colours > 40 and nonwhite > 0.05, "screenshot not blank: %d colours, %.0f%% non-white" %
          (colours, 100 * nonwhite))


def parser():
    ap = argparse.ArgumentParser()
    ap.add_argument("report")
    ap.add_argument("screenshot")
    ap.add_argument("--figures", default="")
    ap.add_argument("--absent", default="")
    ap.add_argument("--sections", default="")
    ap.add_argument("--missing", type=int, default=-1, help="at least this many 'missing' notes (0: none)")
    ap.add_argument("--thumbs", type=int, default=-1, help="exactly this many retrieval thumbnails")
    ap.add_argument("--series", action="append", default=[], help="FIGURE=N hover series in that chart")
    ap.add_argument("--legend", action="append", default=[], help="FIGURE=N legend entries in that chart")
    ap.add_argument("--contains", action="append", default=[], help="FIGURE=TEXT its (or a section's) text contains TEXT")
    ap.add_argument("--points", action="append", default=[],
                    help="FIGURE=N points in that chart: every hover series, or the dots of a map")
    ap.add_argument("--frames", type=int, default=-1, help="exactly this many tracking frames, decoded")
    ap.add_argument("--rows", action="append", default=[], help="TABLE=N data rows in that table")
    ap.add_argument("--imgs", action="append", default=[],
                    help="FIGURE=N[xW] exactly N decoded pictures in that figure (each W pixels wide)")
    ap.add_argument("--full", action="store_true", help="screenshot of the whole page, not the first screen")
    return ap


def main():
    argv, jobs = sys.argv[1:], []
    while True:
        cut = argv.index("--next") if "--next" in argv else len(argv)
        jobs.append(parser().parse_args(argv[:cut]))
        if cut == len(argv):
            break
        argv = argv[cut + 1:]

    profile = tempfile.mkdtemp(prefix="siamese-chromium-")
    opts = Options()
    opts.binary_location = "/usr/bin/chromium"
    for flag in ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-default-apps", "--disable-extensions",
                 "--user-data-dir=" + profile, "--window-size=1280,1600", "--hide-scrollbars"]:
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    try:
        driver.set_page_load_timeout(60)
        for a in jobs:
            check_report(driver, a)
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
