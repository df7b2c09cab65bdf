"""Benchmark 7: each notebook as a student runs it, Run All in JupyterLab in headless Chromium.

For every notebook (a copy without outputs in a scratch folder, so the stored outputs stay as they
are and the saved copy holds only what this run produced) this starts
JupyterLab from the course's environment, opens the notebook in Debian's `chromium` driven by
Selenium, and checks what the regression check cannot see:

- the notebook opens unmodified (JupyterLab marks it modified when, for example, the stored kernel
  name differs from the installed kernel's);
- after Run All (the Run menu) and once the kernel is idle, the saved notebook holds no error and
  no stderr output: what a student would see as a red traceback or a pink box of log lines.

It prints the time from Run All to the last cell, and exits 1 if any notebook fails a check.
Needs `apt-get install chromium chromium-driver` (`make bench-jupyterlab` says so if missing).

    python bench/jupyterlab.py                      # every notebook
    python bench/jupyterlab.py 01_source_models     # some of them
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from common import machine, report

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Lab:
    """A JupyterLab server on 127.0.0.1 serving `root`, with settings of its own (none of the user's)."""

    def __init__(self, root, scratch):
        self.port, self.token = free_port(), secrets.token_hex(16)
        self.base = f"http://127.0.0.1:{self.port}"
        settings = Path(scratch) / "settings"
        # No "news" prompt over the page.
        (settings / "@jupyterlab" / "apputils-extension").mkdir(parents=True)
        (settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false", "checkForUpdates": False}))
        jupyter = Path(sys.executable).with_name("jupyter")
        self.log = open(Path(scratch) / "lab.log", "w")
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.process = subprocess.Popen(
            [str(jupyter), "lab", "--no-browser", f"--port={self.port}", "--ip=127.0.0.1",
             f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={root}",
             *(["--allow-root"] if os.geteuid() == 0 else []),
             f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={Path(scratch) / 'workspaces'}"],
            stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.wait_until(lambda: self.api("status") is not None, 60, "JupyterLab did not start")

    def api(self, path):
        try:
            with urllib.request.urlopen(f"{self.base}/api/{path}?token={self.token}", timeout=5) as response:
                return json.load(response)
        except OSError:
            return None

    @staticmethod
    def wait_until(condition, seconds, message):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(1)
        raise TimeoutError(message)

    def kernels_idle(self):
        kernels = self.api("kernels") or []
        return bool(kernels) and all(kernel["execution_state"] == "idle" for kernel in kernels)

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def click_menu(driver, menu, item):
    """Open a menu of JupyterLab's menu bar and click one of its items, both found by their label."""
    from selenium.webdriver.common.by import By

    labels = driver.find_elements(By.CSS_SELECTOR, ".lm-MenuBar-itemLabel")
    next(label for label in labels if label.text == menu).click()
    time.sleep(0.5)
    entries = driver.find_elements(By.CSS_SELECTOR, ".lm-Menu-itemLabel")
    next(entry for entry in entries if entry.text == item).click()


def busy_prompts(driver):
    from selenium.webdriver.common.by import By

    prompts = driver.find_elements(By.CSS_SELECTOR, ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-InputPrompt")
    return sum(prompt.text.strip() == "[*]:" for prompt in prompts)


def problems(path):
    """`[(cell index among all cells, what, first line)]` of a saved notebook: error outputs, stderr
    streams, and code cells that did not run."""
    found = []
    for index, cell in enumerate(json.loads(Path(path).read_text())["cells"]):
        if cell["cell_type"] == "code" and cell.get("execution_count") is None and "".join(cell["source"]).strip():
            found.append((index, "not run", "".join(cell["source"]).splitlines()[0][:200]))
        for output in cell.get("outputs", []):
            if output["output_type"] == "error":
                found.append((index, "error", f"{output['ename']}: {output['evalue']}"[:200]))
            elif output["output_type"] == "stream" and output["name"] == "stderr":
                text = "".join(output["text"]).strip()
                found.append((index, "stderr", text.splitlines()[0][:200] if text else ""))
    return found


def copy_without_outputs(source, target):
    """The notebook with its outputs and execution counts cleared, nothing else changed: what the run
    saves is then only what this run produced (a cell that did not run shows as such)."""
    notebook = json.loads(Path(source).read_text())
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    Path(target).write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")


def run_notebook(lab, driver, folder, name, timeout):
    """Open `folder/notebooks/name.ipynb` in JupyterLab, check, Run All, wait, save; returns
    `(opened modified, seconds, problems)`."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver.get(f"{lab.base}/lab/tree/notebooks/{name}.ipynb?token={lab.token}")
    current = ".jp-NotebookPanel:not(.lm-mod-hidden)"  # the open tab (closed ones leave no panel)
    lab.wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, f"{current} .jp-Cell"), 120, f"{name} did not open")
    lab.wait_until(lab.kernels_idle, 120, f"the kernel of {name} did not start")
    time.sleep(2)
    modified = bool(driver.find_elements(By.CSS_SELECTOR, ".lm-TabBar-tab.lm-mod-current.jp-mod-dirty"))
    started = time.monotonic()
    click_menu(driver, "Run", "Run All Cells")
    lab.wait_until(lambda: not lab.kernels_idle(), 30, f"Run All did not start {name}")
    # Idle and no cell waiting, twice in a row: a notebook's kernel is briefly idle between cells.
    steady = []
    lab.wait_until(lambda: steady.append(lab.kernels_idle() and busy_prompts(driver) == 0) or steady[-2:] == [True] * 2,
                   timeout, f"{name} did not finish within {timeout} s")
    seconds = time.monotonic() - started
    ActionChains(driver).key_down(Keys.CONTROL).send_keys("s").key_up(Keys.CONTROL).perform()
    saved = folder / "notebooks" / f"{name}.ipynb"
    lab.wait_until(lambda: not driver.find_elements(By.CSS_SELECTOR, ".lm-TabBar-tab.lm-mod-current.jp-mod-dirty"),
                   60, f"{name} was not saved")
    found = problems(saved)
    click_menu(driver, "File", "Close Tab")
    lab.wait_until(lambda: not driver.find_elements(By.CSS_SELECTOR, f"{current} .jp-Cell"), 30,
                   f"{name} did not close")
    return modified, seconds, found


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="notebook names without .ipynb (default: all)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per notebook (default: %(default)s)")
    args = parser.parse_args()
    for tool in (CHROMIUM, CHROMEDRIVER):
        if not Path(tool).is_file():
            sys.exit(f"Received no {tool}. Expected Debian's Chromium: apt-get install chromium chromium-driver.")
    names = args.notebooks or [path.stem for path in sorted((ROOT / "notebooks").glob("*.ipynb"))]
    unknown = [name for name in names if not (ROOT / "notebooks" / f"{name}.ipynb").is_file()]
    if unknown:
        sys.exit(f"Received notebooks {unknown}. Expected names in notebooks/ without .ipynb.")
    rows, failed = [], False
    with tempfile.TemporaryDirectory(prefix="tlhelpers-lab-") as scratch:
        folder = Path(scratch) / "course"
        (folder / "notebooks").mkdir(parents=True)
        for name in names:
            copy_without_outputs(ROOT / "notebooks" / f"{name}.ipynb", folder / "notebooks" / f"{name}.ipynb")
        lab, driver = Lab(folder, scratch), browser()
        try:
            for name in names:
                modified, seconds, found = run_notebook(lab, driver, folder, name, args.timeout)
                failed |= modified or bool(found)
                verdict = "; ".join([*(["opened modified"] if modified else []),
                                     *(f"c{index} {what}: {line}" for index, what, line in found)]) or "clean"
                rows.append((f"{name}: Run All in JupyterLab", f"{seconds:.0f} s, {verdict}"))
                print(f"{name}: {seconds:.0f} s, {verdict}", flush=True)
                for session in lab.api("sessions") or []:  # a fresh kernel for the next notebook
                    request = urllib.request.Request(f"{lab.base}/api/sessions/{session['id']}?token={lab.token}",
                                                     method="DELETE")
                    urllib.request.urlopen(request, timeout=10).close()
        finally:
            driver.quit()
            lab.stop()
    print(machine())
    report("7. every notebook with Run All in JupyterLab, headless Chromium", rows,
           "no error or stderr output, opens unmodified; each under 4 min on the slow CPU kind")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
