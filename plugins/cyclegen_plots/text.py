"""Text on sample pictures: captions and legends in Pillow's bundled font, wrapped to a width.

Pillow >= 10.1 with FreeType scales its bundled font to any size; older Pillow has only a small
fixed bitmap font, which is still readable, so every caller gets some font and never an error.
Both draw Latin-1 only, so other characters are shown as "?" rather than as empty boxes.
Captions are wrapped to the picture's width at spaces; a no-break space keeps, say, "step 1,200"
on one line.
"""

from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont

Font = ImageFont.ImageFont | ImageFont.FreeTypeFont

#: Caption and legend text height in pixels: legible on a 512 px picture and above small image grids.
TEXT_SIZE = 15
LINE_GAP = 4
INK = "#202020"
PAD = 4
#: Joins words that a caption must not break between (drawn as a plain space: the fonts lack it).
NO_BREAK = "\u00a0"


def font(size: int = TEXT_SIZE) -> Font:
    """Pillow's bundled font at `size` px, or its fixed bitmap font where it cannot be scaled."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 takes no size
        return ImageFont.load_default()


def printable(text: str) -> str:
    """`text` in the characters both default fonts have (Latin-1); a no-break space becomes a space."""
    return text.replace(NO_BREAK, " ").encode("latin-1", "replace").decode("latin-1")


def words(text: str) -> list[str]:
    """The pieces `text` may be broken between: split at spaces, never at no-break spaces."""
    return [printable(word) for word in text.split(" ") if word]


def line_height(face: Font) -> int:
    """Pixels from one line's top to the next's."""
    return int(face.getbbox("Ag")[3]) + LINE_GAP


def width_of(text: str, face: Font) -> int:
    return int(face.getbbox(printable(text))[2]) if text else 0


def wrap(text: str, face: Font, width: int) -> list[str]:
    """Break `text` into lines at most `width` px wide (a longer single word keeps its own line)."""
    lines: list[str] = []
    for word in words(text):
        if lines and width_of(f"{lines[-1]} {word}", face) <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines


def draw_lines(draw: ImageDraw.ImageDraw, lines: list[str], left: int, top: int, face: Font) -> int:
    """Draw `lines` from (`left`, `top`) down; returns the y just below them."""
    for line in lines:
        draw.text((left, top), printable(line), font=face, fill=INK)
        top += line_height(face)
    return top


def with_caption(image: Image.Image, title: str | None) -> Image.Image:
    """`image` below a white strip holding `title`, wrapped to the image's width (unchanged without a title).

    A grid narrower than the caption's longest word is widened (white on the right) rather than
    cutting the word.
    """
    pieces = words(title) if title else []
    if not pieces:
        return image
    face = font()
    width = max(image.width, max(width_of(word, face) for word in pieces) + 2 * PAD)
    lines = wrap(title, face, width - 2 * PAD)
    strip = len(lines) * line_height(face) + PAD
    captioned = Image.new(image.mode, (width, image.height + strip), "white")
    draw_lines(ImageDraw.Draw(captioned), lines, PAD, PAD, face)
    captioned.paste(image, (0, strip))
    return captioned
