"""Small Word, PowerPoint and EPUB files built with the libraries the readers use, each
holding a known fact at a known place, and the bad files a seeds folder may hold.

Each builder returns the file's bytes. ``FACTS`` lists what the tests ask and where the
answer must be cited.
"""

from __future__ import annotations

import io
import zipfile

#: (file, question, words the answer holds, location the citation must name)
FACTS = [
    ("report.docx", "How much did the Quell council spend on the harbour wall in 2024?",
     "4.2 million crowns", "Budget › 2024"),
    ("deck.pptx", "At what time does the night ferry to Quell leave?", "23:40", "slide 2"),
    ("deck.pptx", "Which animals may travel on the night ferry to Quell?",
     "only dogs on a lead", "slide 2, speaker notes"),
    ("book.epub", "Who keeps the orchard on Quell?", "Ada Morn", "Part Two › The Orchard"),
]  # fmt: skip


def _png() -> bytes:
    """A 2x2 PNG, for the images the readers must skip."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (2, 2), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


def docx_bytes() -> bytes:
    """A report with a title, a two-level heading path, lists, a table and an image."""
    import docx

    d = docx.Document()
    d.add_paragraph("Annual report of the Quell council", style="Title")
    d.add_paragraph("This report covers the money and works of the island.")
    d.add_heading("Budget", level=1)
    d.add_paragraph("The council plans its spending every spring.")
    d.add_heading("2024", level=2)
    d.add_paragraph("In 2024 the Quell council spent 4.2 million crowns on the new harbour wall.")
    d.add_paragraph("Stone came from the north quarry", style="List Bullet")
    d.add_paragraph("Labour came from the island", style="List Number")
    d.add_picture(io.BytesIO(_png()))
    table = d.add_table(rows=2, cols=2)
    for (r, c), text in {(0, 0): "Item", (0, 1): "Cost", (1, 0): "Harbour wall",
                         (1, 1): "4.2 million"}.items():  # fmt: skip
        table.cell(r, c).text = text
    d.add_heading("Roads", level=1)
    d.add_paragraph("The coast road of Quell was resurfaced in May.")
    out = io.BytesIO()
    d.save(out)
    return out.getvalue()


DOCX_TEXT = (
    "Annual report of the Quell council\n"
    "This report covers the money and works of the island.\n"
    "Budget\n"
    "The council plans its spending every spring.\n"
    "2024\n"
    "In 2024 the Quell council spent 4.2 million crowns on the new harbour wall.\n"
    "Stone came from the north quarry\n"
    "Labour came from the island\n"
    "Item | Cost\n"
    "Harbour wall | 4.2 million\n"
    "Roads\n"
    "The coast road of Quell was resurfaced in May."
)


def pptx_bytes() -> bytes:
    """A deck: a title slide; a slide with a text box, a group, a table, a picture and
    speaker notes; an empty slide; a last slide."""
    import pptx
    from pptx.util import Inches

    deck = pptx.Presentation()
    s = deck.slides.add_slide(deck.slide_layouts[0])
    s.shapes.title.text = "Quell ferry review"
    s.placeholders[1].text = "Prepared for the harbour board"

    s = deck.slides.add_slide(deck.slide_layouts[5])  # title only
    s.shapes.title.text = "Timetable"
    box = s.shapes.add_textbox(Inches(1), Inches(2), Inches(6), Inches(1)).text_frame
    box.text = "The night ferry to Quell leaves at 23:40 from pier 7."
    box.add_paragraph().text = "Tickets are sold on board\vand at the pier"
    s.shapes.add_picture(io.BytesIO(_png()), Inches(7), Inches(2))
    group = s.shapes.add_group_shape()
    group.shapes.add_textbox(
        Inches(1), Inches(3), Inches(3), Inches(1)
    ).text_frame.text = "Winter crossings take longer"
    table = s.shapes.add_table(2, 2, Inches(1), Inches(4), Inches(4), Inches(1)).table
    for (r, c), text in {(0, 0): "Day", (0, 1): "Departures", (1, 0): "Sunday",
                         (1, 1): "two"}.items():  # fmt: skip
        table.cell(r, c).text = text
    s.notes_slide.notes_text_frame.text = (
        "Say that only dogs on a lead may travel on the night ferry to Quell."
    )

    deck.slides.add_slide(deck.slide_layouts[6])  # blank: no text at all
    s = deck.slides.add_slide(deck.slide_layouts[5])
    s.shapes.title.text = "Next steps"
    out = io.BytesIO()
    deck.save(out)
    return out.getvalue()


PPTX_TEXT = (
    "Quell ferry review\n"
    "Prepared for the harbour board\n\n"
    "Timetable\n"
    "The night ferry to Quell leaves at 23:40 from pier 7.\n"
    "Tickets are sold on board\n"
    "and at the pier\n"
    "Winter crossings take longer\n"
    "Day | Departures\n"
    "Sunday | two\n"
    "Say that only dogs on a lead may travel on the night ferry to Quell.\n\n"
    "Next steps"
)


def epub_bytes(*, toc: bool = True) -> bytes:
    """A book in two parts: a chapter file, and a file holding two chapters (the second
    reached by a fragment link), with a cover image and a navigation document."""
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("quell-tales")
    book.set_title("Tales of Quell")
    book.set_language("en")
    cover = epub.EpubItem(
        uid="cover", file_name="cover.png", media_type="image/png", content=_png()
    )
    book.add_item(cover)
    ch1 = epub.EpubHtml(title="The Lighthouse", file_name="text/ch1.xhtml", lang="en")
    ch1.content = (
        "<h1>The Lighthouse</h1><p>The lighthouse on Quell was painted green in 1911.</p>"
        '<p><img src="../cover.png" alt=""/></p>'
    )
    ch2 = epub.EpubHtml(title="The Fruit", file_name="text/ch2.xhtml", lang="en")
    ch2.content = (
        "<h1>The Fruit</h1><p>The Zorblax fruit of Quell turns violet when ripe.</p>"
        '<h2 id="orchard">The Orchard</h2><p>The orchard on Quell is kept by Ada Morn.</p>'
    )
    book.add_item(ch1)
    book.add_item(ch2)
    if toc:
        book.toc = [
            (epub.Section("Part One"), [epub.Link("text/ch1.xhtml", "The Lighthouse", "l")]),
            (
                epub.Section("Part Two"),
                [
                    epub.Link("text/ch2.xhtml", "The Fruit", "f"),
                    epub.Link("text/ch2.xhtml#orchard", "The Orchard", "o"),
                ],
            ),
        ]
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["nav", ch1, ch2]
    out = io.BytesIO()
    epub.write_epub(out, book)
    return out.getvalue()


EPUB_TEXT = (
    "The Lighthouse\n"
    "The lighthouse on Quell was painted green in 1911.\n\n"
    "The Fruit\n"
    "The Zorblax fruit of Quell turns violet when ripe.\n"
    "The Orchard\n"
    "The orchard on Quell is kept by Ada Morn."
)


def office_files() -> dict[str, bytes]:
    """The three good files, by name."""
    return {"report.docx": docx_bytes(), "deck.pptx": pptx_bytes(), "book.epub": epub_bytes()}


# --------------------------------------------------------------------------- bad files


def encrypted_office() -> bytes:
    """What a password-protected .docx/.pptx is: an OLE compound file with EncryptionInfo
    and EncryptedPackage streams (header and directory names only; enough to recognise)."""
    header = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504
    names = b"".join(n.encode("utf-16-le").ljust(128, b"\x00")
                     for n in ("Root Entry", "EncryptionInfo", "EncryptedPackage"))  # fmt: skip
    return header + names + b"\x00" * 1024


def drm_epub() -> bytes:
    """A good e-book with its chapters declared encrypted (Adobe ADEPT-style AES)."""
    src = zipfile.ZipFile(io.BytesIO(epub_bytes()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for info in src.infolist():
            z.writestr(info, src.read(info))
        z.writestr(
            "META-INF/encryption.xml",
            '<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" '
            'xmlns:enc="http://www.w3.org/2001/04/xmlenc#"><enc:EncryptedData>'
            '<enc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>'
            '<enc:CipherData><enc:CipherReference URI="EPUB/text/ch1.xhtml"/></enc:CipherData>'
            "</enc:EncryptedData></encryption>",
        )
    return out.getvalue()


def empty_docx() -> bytes:
    import docx

    out = io.BytesIO()
    docx.Document().save(out)
    return out.getvalue()


def empty_pptx() -> bytes:
    import pptx

    deck = pptx.Presentation()
    deck.slides.add_slide(deck.slide_layouts[6])
    out = io.BytesIO()
    deck.save(out)
    return out.getvalue()


def bad_files() -> dict[str, bytes]:
    """Files a build must skip with a one-line warning each, by name."""
    good_docx = docx_bytes()
    return {
        "truncated.docx": good_docx[: len(good_docx) // 2],
        "locked.docx": encrypted_office(),
        "locked.pptx": encrypted_office(),
        "notes.docx": b"just some text saved with the wrong name\n",
        "empty.docx": empty_docx(),
        "empty.pptx": empty_pptx(),
        "drm.epub": drm_epub(),
        "broken.epub": b"PK\x03\x04" + b"\x00" * 64,
        "nobook.epub": _zip({"mimetype": b"application/epub+zip"}),
        "noslides.pptx": _zip({"[Content_Types].xml": b"<Types/>"}),
    }


def _zip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return out.getvalue()
