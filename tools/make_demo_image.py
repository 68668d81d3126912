#!/usr/bin/env python3
"""Draws the bundled demo picture (assets/demo.png): a small synthetic landscape.

Run once by hand; the PNG is committed. Needs Pillow (pip install pillow).
"""
import sys

from PIL import Image, ImageDraw

W, H = 640, 480
img = Image.new("RGB", (W, H))
d = ImageDraw.Draw(img)
for y in range(H * 2 // 3):  # sky gradient
    t = y / (H * 2 / 3)
    d.line([(0, y), (W, y)], fill=(int(90 + 100 * t), int(150 + 70 * t), 255))
d.rectangle([0, H * 2 // 3, W, H], fill=(70, 150, 60))  # grass
d.ellipse([500, 40, 580, 120], fill=(255, 220, 60))  # sun
d.rectangle([140, 220, 340, 360], fill=(200, 60, 50))  # house
d.polygon([(120, 220), (240, 130), (360, 220)], fill=(110, 60, 40))  # roof
d.rectangle([220, 290, 260, 360], fill=(90, 50, 30))  # door
d.rectangle([165, 245, 205, 280], fill=(180, 220, 255))  # window
d.rectangle([420, 260, 440, 350], fill=(100, 70, 40))  # tree trunk
d.ellipse([380, 170, 480, 280], fill=(40, 120, 40))  # tree crown
img.save(sys.argv[1] if len(sys.argv) > 1 else "assets/demo.png", optimize=True)
