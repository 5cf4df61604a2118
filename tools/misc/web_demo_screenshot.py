# Copyright (c) mmovl contributors. All rights reserved.
"""Screenshot of a running web demo (demo/web_demo.py) in headless
Chromium, after a run on one of its example images and vocabularies.

    python demo/web_demo.py configs/mkt/mkt_toy_vit_p8_10e_toy.py \\
        work_dirs/bench_mkt/MKT/epoch_10.pth &
    python tools/misc/web_demo_screenshot.py http://127.0.0.1:7860 \\
        docs/web_demo.png --image 2 --vocabulary "the 6 unseen labels"

Needs Chromium (``apt-get install chromium``) and websocket-client.
"""
import argparse
import io

from mmovl.testing.browser import HeadlessChromium


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('url', help="the demo's address")
    parser.add_argument('out', help='PNG to write')
    parser.add_argument('--tab', choices=['cls', 'det'], default='cls',
                        help='the ranking (cls) or detection (det) tab')
    parser.add_argument('--image', type=int, default=0,
                        help='which example image to click (0-based)')
    parser.add_argument('--vocabulary', default='the 6 unseen labels',
                        help='title of the example vocabulary to click')
    parser.add_argument('--width', type=int, default=1100,
                        help='page width in CSS pixels')
    parser.add_argument('--scale', type=float, default=0.75,
                        help='shrink the picture by this factor (smaller '
                        'file)')
    return parser.parse_args()


def main():
    args = parse_args()
    tab = args.tab
    with HeadlessChromium(width=args.width, height=900) as browser:
        browser.goto(args.url)
        browser.wait_for_element(f'#{tab}-run')
        if tab == 'det':
            browser.click('[role=tab][data-tab-id=detect]')
            browser.wait_for_element('#det-run')
        browser.click(f'#{tab}-example-images button.gallery-item:'
                      f'nth-of-type({args.image + 1})')
        browser.wait_for_element(f'#{tab}-image img')
        browser.click(f'#{tab}-example-vocabularies button.gallery-item',
                      text=args.vocabulary)
        browser.wait_for(f'document.querySelector("#{tab}-labels textarea")'
                         '.value', what='the example vocabulary')
        browser.click(f'#{tab}-run')
        browser.wait_for(
            f'document.querySelector(\'#{tab}-status [data-testid='
            '"markdown"]\').innerText.includes(" in ")',
            what='the result')
        browser.wait_for(f'document.querySelector("#{tab}-picture img") '
                         '&& document.querySelector("#{tab}-picture img")'
                         '.complete'.replace('{tab}', tab),
                         what='the picture')
        data = browser.screenshot()
    from PIL import Image
    image = Image.open(io.BytesIO(data)).convert('RGB')
    if args.scale != 1:
        size = (round(image.width * args.scale),
                round(image.height * args.scale))
        image = image.resize(size, Image.LANCZOS)
    # a palette PNG: a screenshot has few colours, and a small file
    image.quantize(colors=256, method=Image.Quantize.FASTOCTREE).save(
        args.out, optimize=True)
    print(f'{args.out}: {image.width} x {image.height}')


if __name__ == '__main__':
    main()
