# Copyright (c) mmovl contributors. All rights reserved.
"""A headless Chromium driven over the Chrome DevTools Protocol, for tests
of the web demo in a real browser and for its screenshot.

The system's Chromium (``apt-get install chromium``) is started with
``--remote-debugging-port=0`` and spoken to over a websocket
(``websocket-client``, from pip): no browser download and no chromedriver.
Inputs go through the browser as a user's would: files through the file
input (``DOM.setFileInputFiles``), text through ``Input.insertText``,
clicks as mouse events at the element's centre.

    >>> from mmovl.testing.browser import HeadlessChromium, find_chromium
    >>> with HeadlessChromium() as browser:  # doctest: +SKIP
    ...     browser.goto('http://127.0.0.1:7860')
    ...     browser.click('#cls-run')
    ...     browser.screenshot('page.png')
"""
import base64
import itertools
import json
import os
import os.path as osp
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from typing import Any, List, Optional, Sequence

__all__ = ['BrowserError', 'HeadlessChromium', 'find_chromium']

#: Names the Chromium executable goes by (Debian's, Ubuntu's, Google's).
CHROMIUM_NAMES = ('chromium', 'chromium-browser', 'google-chrome',
                  'google-chrome-stable', 'chrome')


class BrowserError(RuntimeError):
    """The browser failed to start, or a page did not do what was asked in
    time; the message says what."""


def find_chromium() -> Optional[str]:
    """The Chromium executable: ``$MMOVL_CHROMIUM`` if set, else the first
    of :data:`CHROMIUM_NAMES` on the ``PATH``; None if there is none."""
    given = os.environ.get('MMOVL_CHROMIUM')
    if given:
        return shutil.which(given)
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def _js(value: Any) -> str:
    """A Python value as a JavaScript literal."""
    return json.dumps(value)


class HeadlessChromium:
    """A headless Chromium with one page, and the few actions tests need.

    Args:
        binary (str, optional): The executable. Defaults to
            :func:`find_chromium`'s.
        width (int): Viewport width in CSS pixels. Defaults to 1280.
        height (int): Viewport height. Defaults to 1000.
        timeout (float): Seconds to wait for the browser to start, and the
            default wait of :meth:`wait_for`. Defaults to 60.

    Raises:
        BrowserError: No Chromium, or it did not start.
    """

    def __init__(self,
                 binary: Optional[str] = None,
                 width: int = 1280,
                 height: int = 1000,
                 timeout: float = 60) -> None:
        import websocket  # websocket-client

        binary = binary or find_chromium()
        if not binary:
            raise BrowserError('No Chromium found (looked for '
                               f'{", ".join(CHROMIUM_NAMES)} on the PATH, '
                               'and $MMOVL_CHROMIUM).')
        self.timeout = timeout
        self._ids = itertools.count(1)
        self._ws = None
        self._profile = tempfile.mkdtemp(prefix='mmovl-chromium-')
        self._log = open(osp.join(self._profile, 'chromium.log'), 'wb')
        args = [
            binary, '--headless=new', '--no-sandbox', '--disable-gpu',
            '--disable-dev-shm-usage', '--no-first-run',
            '--no-default-browser-check', '--disable-extensions',
            '--disable-background-networking', '--disable-component-update',
            '--disable-sync', '--mute-audio', '--hide-scrollbars',
            f'--window-size={width},{height}',
            f'--user-data-dir={self._profile}', '--remote-debugging-port=0',
            'about:blank'
        ]
        # Its own process group, so that close() ends its helpers with it.
        self._process = subprocess.Popen(
            args, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True)
        try:
            port = self._wait_for_port()
            self._ws = websocket.create_connection(
                self._page_socket(port), timeout=timeout,
                suppress_origin=True)
            for domain in ('Page', 'Runtime', 'DOM'):
                self.call(f'{domain}.enable')
            self.call('Emulation.setDeviceMetricsOverride', width=width,
                      height=height, deviceScaleFactor=1, mobile=False)
        except BaseException:
            self.close()
            raise

    # -- start and stop ---------------------------------------------------
    def _wait_for_port(self) -> int:
        path = osp.join(self._profile, 'DevToolsActivePort')
        end = time.monotonic() + self.timeout
        while time.monotonic() < end:
            if self._process.poll() is not None:
                raise BrowserError(
                    f'Chromium exited with code {self._process.returncode} '
                    f'before it listened: {self._log_tail()}')
            if osp.isfile(path):
                with open(path) as f:
                    first = f.readline().strip()
                if first.isdigit():
                    return int(first)
            time.sleep(0.1)
        raise BrowserError(f'Chromium did not listen within {self.timeout} '
                           f's: {self._log_tail()}')

    def _page_socket(self, port: int) -> str:
        end = time.monotonic() + self.timeout
        while True:
            with urllib.request.urlopen(
                    f'http://127.0.0.1:{port}/json/list', timeout=10) as r:
                targets = json.load(r)
            pages = [t for t in targets if t.get('type') == 'page']
            if pages:
                return pages[0]['webSocketDebuggerUrl']
            if time.monotonic() > end:
                raise BrowserError('Chromium opened no page.')
            time.sleep(0.1)

    def _log_tail(self) -> str:
        self._log.flush()
        with open(self._log.name, 'rb') as f:
            return f.read()[-2000:].decode('utf-8', errors='replace')

    def close(self) -> None:
        """End the browser (its process group) and remove its profile."""
        if self._ws is not None:
            try:
                self._ws.close()
            except Exception:
                pass
            self._ws = None
        if self._process.poll() is None:
            try:
                os.killpg(self._process.pid, signal.SIGTERM)
                self._process.wait(10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self._process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self._process.wait()
        self._log.close()
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> 'HeadlessChromium':
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the protocol -----------------------------------------------------
    def call(self, method: str, **params) -> dict:
        """Send one DevTools command and return its result (events that
        arrive meanwhile are dropped)."""
        if self._ws is None:
            raise BrowserError('The browser is closed.')
        call_id = next(self._ids)
        self._ws.send(json.dumps(dict(id=call_id, method=method,
                                      params=params)))
        while True:
            message = json.loads(self._ws.recv())
            if message.get('id') != call_id:
                continue
            if 'error' in message:
                raise BrowserError(f'{method}: {message["error"]}')
            return message.get('result', {})

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises are
        awaited)."""
        result = self.call('Runtime.evaluate', expression=expression,
                           returnByValue=True, awaitPromise=True)
        if 'exceptionDetails' in result:
            details = result['exceptionDetails']
            text = details.get('exception', {}).get(
                'description') or details.get('text')
            raise BrowserError(f'JavaScript error: {text}')
        return result.get('result', {}).get('value')

    def wait_for(self,
                 expression: str,
                 timeout: Optional[float] = None,
                 what: Optional[str] = None) -> Any:
        """Evaluate ``expression`` until it is truthy, and return it.

        Raises:
            BrowserError: Not within ``timeout`` seconds (default: the
                browser's); the message names ``what`` (or the expression).
        """
        end = time.monotonic() + (timeout or self.timeout)
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > end:
                raise BrowserError(
                    f'Timed out waiting for {what or expression}')
            time.sleep(0.1)

    # -- actions ----------------------------------------------------------
    def goto(self, url: str) -> None:
        """Open ``url`` and wait until the document has loaded."""
        self.call('Page.navigate', url=url)
        self.wait_for("document.readyState === 'complete' && "
                      f'location.href.startsWith({_js(url[:20])})',
                      what=f'{url} to load')

    def exists(self, selector: str) -> bool:
        return bool(self.evaluate(
            f'document.querySelector({_js(selector)}) !== null'))

    def wait_for_element(self, selector: str,
                         timeout: Optional[float] = None) -> None:
        self.wait_for(f'document.querySelector({_js(selector)}) !== null',
                      timeout, what=f'an element {selector}')

    def text(self, selector: str) -> str:
        """The rendered text of the first element ``selector`` matches."""
        self.wait_for_element(selector)
        return self.evaluate(
            f'document.querySelector({_js(selector)}).innerText')

    def texts(self, selector: str) -> List[str]:
        """The rendered text of every element ``selector`` matches."""
        return self.evaluate(
            f'[...document.querySelectorAll({_js(selector)})]'
            '.map(e => e.innerText)')

    def attribute(self, selector: str, name: str) -> Optional[str]:
        self.wait_for_element(selector)
        return self.evaluate(f'document.querySelector({_js(selector)})'
                             f'.getAttribute({_js(name)})')

    def set_files(self, selector: str, paths: Sequence[str]) -> None:
        """Choose files in a file input, as a user's file dialog would
        (the page sees its change event)."""
        self.wait_for_element(selector)
        root = self.call('DOM.getDocument', depth=-1, pierce=True)['root']
        node = self.call('DOM.querySelector', nodeId=root['nodeId'],
                         selector=selector)['nodeId']
        self.call('DOM.setFileInputFiles', nodeId=node,
                  files=[osp.abspath(p) for p in paths])

    def type_text(self, selector: str, text: str) -> None:
        """Replace the text of an input or textarea, typed as a user
        would (the page sees its input events)."""
        self.wait_for_element(selector)
        self.evaluate(f'(() => {{ const e = document.querySelector('
                      f'{_js(selector)}); e.focus(); e.select(); }})()')
        self.call('Input.insertText', text=text)

    def click(self, selector: str, text: Optional[str] = None) -> None:
        """Click the centre of an element with the mouse (scrolled into
        view first): the first that ``selector`` matches, or the first of
        them whose rendered text is ``text``."""
        find = (f'[...document.querySelectorAll({_js(selector)})].find('
                f'e => e.innerText.trim() === {_js(text)})'
                if text is not None else
                f'document.querySelector({_js(selector)})')
        what = selector if text is None else f'{selector} "{text}"'
        self.wait_for(f'Boolean({find})', what=f'an element {what}')
        x, y = self.evaluate(
            f'(() => {{ const e = {find}; '
            "e.scrollIntoView({block: 'center'}); "
            'const r = e.getBoundingClientRect(); '
            'return [r.x + r.width / 2, r.y + r.height / 2]; })()')
        for kind in ('mouseMoved', 'mousePressed', 'mouseReleased'):
            self.call('Input.dispatchMouseEvent', type=kind, x=x, y=y,
                      button='left' if kind != 'mouseMoved' else 'none',
                      clickCount=1 if kind != 'mouseMoved' else 0)

    def screenshot(self, path: Optional[str] = None,
                   full_page: bool = True) -> bytes:
        """A PNG of the page (the whole page, or the viewport), written to
        ``path`` if given."""
        params = dict(format='png')
        if full_page:
            params['captureBeyondViewport'] = True
            size = self.call('Page.getLayoutMetrics')['cssContentSize']
            params['clip'] = dict(x=0, y=0, width=size['width'],
                                  height=size['height'], scale=1)
        data = base64.b64decode(
            self.call('Page.captureScreenshot', **params)['data'])
        if path:
            os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
            with open(path, 'wb') as f:
                f.write(data)
        return data
