"""Loads a page in Debian's headless chromium and reports what a reader would see go wrong:
console errors, uncaught exceptions, failed loads, and each <img> with its natural size.

Driven over --remote-debugging-pipe (the DevTools protocol on fds 3 and 4, messages ended by
NUL): no port, nothing another process on the machine can reach."""
import json
import os
import shutil
import subprocess
import tempfile
import time

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--remote-debugging-pipe"]
IMAGES = ("JSON.stringify(Array.from(document.images).map(i => ({src: i.src.slice(0, 40),"
          " complete: i.complete, width: i.naturalWidth, height: i.naturalHeight,"
          " cls: i.className})))")


class Pipe:
    def __init__(self, proc, to_fd, from_fd):
        self.proc, self.to_fd, self.from_fd = proc, to_fd, from_fd
        self.buf, self.next_id, self.events = b"", 0, []

    def send(self, method, params=None, session=None):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.to_fd, json.dumps(msg).encode() + b"\0")
        return self.wait(lambda m: m.get("id") == self.next_id)

    def wait(self, match, timeout=60):
        deadline = time.time() + timeout
        while True:
            for i, m in enumerate(self.events):
                if match(m):
                    return self.events.pop(i) if "id" in m else m
            if time.time() > deadline:
                raise TimeoutError(f"chromium: no answer ({self.events[-3:]})")
            chunk = os.read(self.from_fd, 1 << 16)
            if not chunk:
                raise EOFError("chromium closed the pipe")
            self.buf += chunk
            *msgs, self.buf = self.buf.split(b"\0")
            self.events += [json.loads(m) for m in msgs if m]


def load(url, timeout=60):
    """{"errors": [...], "images": [...], "title": ...} of the page at url."""
    profile = tempfile.mkdtemp(prefix="pl-chromium-")
    cmd_r, cmd_w = os.pipe()  # the browser reads commands on fd 3
    ans_r, ans_w = os.pipe()  # and writes answers and events on fd 4

    def child_fds():
        a, b = os.dup(cmd_r), os.dup(ans_w)  # above 4: dup2 cannot overwrite one with the other
        os.dup2(a, 3)
        os.dup2(b, 4)

    proc = subprocess.Popen(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
        pass_fds=(3, 4), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        preexec_fn=child_fds)
    os.close(cmd_r)
    os.close(ans_w)
    pipe = Pipe(proc, cmd_w, ans_r)
    try:
        target = pipe.send("Target.createTarget", {"url": "about:blank"})["result"]["targetId"]
        session = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "result"]["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            pipe.send(f"{domain}.enable", session=session)
        pipe.send("Page.navigate", {"url": url}, session=session)
        pipe.wait(lambda m: m.get("method") == "Page.loadEventFired", timeout)
        images = json.loads(pipe.send("Runtime.evaluate", {"expression": IMAGES},
                                      session=session)["result"]["result"]["value"])
        title = pipe.send("Runtime.evaluate", {"expression": "document.title"},
                          session=session)["result"]["result"]["value"]
        return {"errors": _errors(pipe.events), "images": images, "title": title}
    finally:
        try:
            pipe.send("Browser.close")
        except (OSError, EOFError, TimeoutError):
            pass
        os.close(cmd_w)
        os.close(ans_r)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(profile, ignore_errors=True)


def _errors(events):
    out = []
    for m in events:
        method, p = m.get("method"), m.get("params", {})
        if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            out.append("console: " + " ".join(str(a.get("value", a.get("description")))
                                               for a in p.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            out.append("exception: " + p["exceptionDetails"].get("text", ""))
        elif method == "Log.entryAdded" and p["entry"].get("level") == "error":
            out.append("log: " + p["entry"].get("text", ""))
        elif method == "Network.loadingFailed":
            out.append("load failed: " + p.get("errorText", ""))
    return out
