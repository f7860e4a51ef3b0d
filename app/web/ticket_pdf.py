"""A booking's ticket as a one-page PDF: what the traveller shows at the meeting point
(the QR code of the booking's reference, which the crew's check-in reads), the line, the
departure in its own zone, where to meet, and each passenger's seat or berth. Chinese is
set in the PDF's standard CJK font (STSong-Light), which readers supply: nothing is
embedded, so the file stays a few kilobytes."""

from __future__ import annotations

import io

from reportlab.graphics import renderPDF
from reportlab.graphics.barcode.qr import QrCodeWidget
from reportlab.graphics.shapes import Drawing
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen.canvas import Canvas

from app.booking.schemas import BookingOut
from app.catalogue.services.common import in_zone
from app.core.i18n import _
from app.core.labels import datetime_text, passenger_label, seat_class_label

FONT = "STSong-Light"
pdfmetrics.registerFont(UnicodeCIDFont(FONT))
QR_SIZE = 48 * mm
MARGIN = 20 * mm


def render_ticket(booking: BookingOut, operator_name: str = "") -> bytes:
    """The ticket of a confirmed booking, in the reader's language."""
    buffer = io.BytesIO()
    width, height = A4
    pdf = Canvas(buffer, pagesize=A4, invariant=True)
    pdf.setTitle(_("Ticket {reference}").format(reference=booking.reference))
    pdf.setAuthor(operator_name or "Tourline")
    top = height - MARGIN

    pdf.setFont(FONT, 20)
    pdf.drawString(MARGIN, top - 8 * mm, booking.route_name)
    pdf.setFont(FONT, 11)
    departs = in_zone(booking.departs_at, booking.time_zone)
    pdf.drawString(
        MARGIN,
        top - 16 * mm,
        _("Departs {moment} ({zone})").format(
            moment=datetime_text(departs), zone=booking.time_zone
        ),
    )
    if booking.pickup_stop is not None:
        meeting = in_zone(booking.pickup_stop.at, booking.time_zone)
        pdf.drawString(
            MARGIN,
            top - 22 * mm,
            _("Meet at {place}, {moment}").format(
                place=booking.pickup_stop.name, moment=datetime_text(meeting)
            ),
        )
    if booking.agency is not None:
        pdf.drawString(
            MARGIN,
            top - 28 * mm,
            _("Booked through {agency}").format(agency=booking.agency.name),
        )

    # The reference, large, and its QR code: what check-in reads.
    code = QrCodeWidget(booking.reference, barLevel="M")
    left, bottom, right, upper = code.getBounds()
    drawing = Drawing(
        QR_SIZE,
        QR_SIZE,
        transform=[QR_SIZE / (right - left), 0, 0, QR_SIZE / (upper - bottom), 0, 0],
    )
    drawing.add(code)
    renderPDF.draw(drawing, pdf, width - MARGIN - QR_SIZE, top - QR_SIZE)
    pdf.setFont(FONT, 10)
    pdf.drawCentredString(width - MARGIN - QR_SIZE / 2, top - QR_SIZE - 5 * mm, _("Booking"))
    pdf.setFont("Courier-Bold", 16)
    pdf.drawCentredString(width - MARGIN - QR_SIZE / 2, top - QR_SIZE - 11 * mm, booking.reference)

    # The passengers: one row each.
    y = top - QR_SIZE - 24 * mm
    pdf.setFont(FONT, 12)
    pdf.drawString(MARGIN, y, _("Passengers"))
    y -= 3 * mm
    pdf.line(MARGIN, y, width - MARGIN, y)
    pdf.setFont(FONT, 11)
    for line in booking.lines:
        y -= 8 * mm
        pdf.drawString(MARGIN, y, line.passenger_name or "—")
        pdf.drawString(MARGIN + 70 * mm, y, passenger_label(line.passenger_type))
        pdf.drawString(
            MARGIN + 100 * mm, y, f"{seat_class_label(line.seat_class)} {line.seat_label}"
        )
    y -= 14 * mm
    pdf.setFont(FONT, 9)
    pdf.drawString(
        MARGIN, y, _("Show this QR code to the crew at the meeting point; keep it to yourself.")
    )
    pdf.showPage()
    pdf.save()
    return buffer.getvalue()
