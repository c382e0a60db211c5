//! The message model: segments, fields, repetitions, components and subcomponents
//! (HL7 v2 chapter 2, section 2.5 "Message framework": segments, fields and the delimiters
//! that separate them, v2.5 numbering).
//!
//! Parsing only finds the segments (one pass for the terminators); fields and their parts
//! are found when asked for, by splitting the segment text at the message's own delimiters.
//! Every part is a slice of the (decoded) input: raw access returns `&str` borrowed from it
//! and decoded access ([`Field::value`], [`Field::text`] …) returns [`Cow`], borrowed when the
//! value has no escape sequence.
//!
//! Positions are 1-based as in HL7 (`PID-3.4`). A position past the end is an empty part, so
//! that `723327^^^SLM^^^^^^^DEPID` has component 4 = `SLM`, 11 = `DEPID` and 12 = `` (B05).
//! In MSH, the numbering is HL7's: MSH-1 is the field separator itself, MSH-2 the encoding
//! characters (both returned as written, never split or unescaped), MSH-3 the sending
//! application.

use std::borrow::Cow;
use std::fmt;

use crate::charset::Charset;
use crate::delimiters::Delimiters;
use crate::error::{ParseError, ParseWarning};
use crate::escape::unescape;

/// One HL7 v2 message: its text (borrowed from the input unless decoding made a copy), where
/// its segments are, and its delimiters and character set.
#[derive(Clone)]
pub struct Message<'a> {
    text: Cow<'a, str>,
    /// Byte ranges of the segments in `text`, without terminators or trailing spaces.
    segments: Vec<(usize, usize)>,
    ctx: Ctx,
}

/// What every part needs to split and decode itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ctx {
    pub(crate) delimiters: Delimiters,
    pub(crate) charset: Charset,
}

impl<'a> Message<'a> {
    /// Indexes the segments of `text` (already decoded) and checks the header.
    pub(crate) fn build(
        text: Cow<'a, str>,
        charset: Charset,
        warnings: &mut Vec<ParseWarning>,
    ) -> Result<Self, ParseError> {
        let (delimiters, segments) = index_segments(&text, warnings)?;
        let message = Message {
            text,
            segments,
            ctx: Ctx {
                delimiters,
                charset,
            },
        };
        // MSH-9 is required (chapter 2, MSH); an empty trigger (`ACK^`) is fine.
        if message.msh().field(9).component(1).raw().trim().is_empty() {
            return Err(ParseError::MessageTypeMissing);
        }
        Ok(message)
    }

    /// Sets the character set once MSH-18 has been read from the parsed text.
    pub(crate) fn set_charset(&mut self, charset: Charset) {
        self.ctx.charset = charset;
    }

    /// All segments, in order.
    pub fn segments(&self) -> Segments<'_> {
        Segments {
            text: &self.text,
            spans: self.segments.iter().enumerate(),
            ctx: &self.ctx,
        }
    }

    /// The first segment with this id (`"PID"`, `"ZXY"` …).
    pub fn segment(&self, id: &str) -> Option<Segment<'_>> {
        self.segments().find(|segment| segment.id() == id)
    }

    /// Every segment with this id, in order (all the OBX of a result, say).
    pub fn segments_named<'m, 'i>(
        &'m self,
        id: &'i str,
    ) -> impl Iterator<Item = Segment<'m>> + use<'m, 'i, 'a> {
        self.segments().filter(move |segment| segment.id() == id)
    }

    /// The MSH segment, which is always the first.
    pub fn msh(&self) -> Segment<'_> {
        let (start, end) = self.segments[0];
        Segment {
            raw: &self.text[start..end],
            position: 1,
            ctx: &self.ctx,
        }
    }

    /// The decoded value at an HL7 path: `PID-5`, `PV1-3.4`, `PID-3(2).1` (second repetition),
    /// `OBX(3)-5` (third OBX), `PID-3.4.2` (subcomponent). A path that stops above the
    /// subcomponent gives the first value below it, as [`Field::value`] does.
    ///
    /// `None` when the path is malformed or names a segment that is not there; a field or
    /// component past the end of a present segment is `Some("")`.
    pub fn get(&self, path: &str) -> Option<Cow<'_, str>> {
        self.resolve(path).map(|part| part.value())
    }

    /// The raw (still escaped) text at an HL7 path, as for [`Message::get`]. A path to a
    /// field gives the whole field, repetitions and components included.
    pub fn get_raw(&self, path: &str) -> Option<&str> {
        self.resolve(path).map(|part| part.raw())
    }

    fn resolve(&self, path: &str) -> Option<Part<'_>> {
        let path = Path::parse(path)?;
        let segment = self
            .segments()
            .filter(|segment| segment.id() == path.segment)
            .nth(path.segment_index - 1)?;
        let field = segment.field(path.field);
        let part = match (path.repetition, path.component, path.subcomponent) {
            (None, None, _) => Part::Field(field),
            (Some(r), None, _) => Part::Repetition(field.repetition(r)),
            (r, Some(c), None) => Part::Component(field.repetition(r.unwrap_or(1)).component(c)),
            (r, Some(c), Some(s)) => Part::SubComponent(
                field
                    .repetition(r.unwrap_or(1))
                    .component(c)
                    .subcomponent(s),
            ),
        };
        Some(part)
    }

    /// The delimiters from MSH-1 and MSH-2.
    pub fn delimiters(&self) -> &Delimiters {
        &self.ctx.delimiters
    }

    /// The character set the message was read in (from MSH-18, or UTF-8 when it is empty).
    pub fn charset(&self) -> Charset {
        self.ctx.charset
    }

    /// True when the message borrows its input (no character set conversion was needed).
    pub fn is_borrowed(&self) -> bool {
        matches!(self.text, Cow::Borrowed(_))
    }

    /// A copy that owns its text, to keep the message beyond the life of the input.
    pub fn into_owned(self) -> Message<'static> {
        Message {
            text: Cow::Owned(self.text.into_owned()),
            segments: self.segments,
            ctx: self.ctx,
        }
    }

    fn msh_component(&self, field: usize, component: usize) -> Cow<'_, str> {
        self.msh().field(field).component(component).value()
    }

    /// MSH-3.1, the sending application's namespace id.
    pub fn sending_application(&self) -> Cow<'_, str> {
        self.msh_component(3, 1)
    }

    /// MSH-4.1, the sending facility's namespace id.
    pub fn sending_facility(&self) -> Cow<'_, str> {
        self.msh_component(4, 1)
    }

    /// MSH-5.1, the receiving application's namespace id.
    pub fn receiving_application(&self) -> Cow<'_, str> {
        self.msh_component(5, 1)
    }

    /// MSH-6.1, the receiving facility's namespace id.
    pub fn receiving_facility(&self) -> Cow<'_, str> {
        self.msh_component(6, 1)
    }

    /// MSH-9.1, the message code (`ADT`, `ORU`, `ACK` …). Never empty: parsing refuses that.
    pub fn message_type(&self) -> Cow<'_, str> {
        self.msh_component(9, 1)
    }

    /// MSH-9.2, the trigger event (`A01`); empty in `ACK^` or `ACK`.
    pub fn trigger(&self) -> Cow<'_, str> {
        self.msh_component(9, 2)
    }

    /// MSH-9.3, the message structure (`ADT_A01`), from v2.3.1 on; often empty.
    pub fn structure(&self) -> Cow<'_, str> {
        self.msh_component(9, 3)
    }

    /// MSH-10, the message control id that an acknowledgment echoes in MSA-2.
    pub fn control_id(&self) -> Cow<'_, str> {
        self.msh().field(10).value()
    }

    /// MSH-11.1, the processing id (`P` production, `T` training, `D` debugging).
    pub fn processing_id(&self) -> Cow<'_, str> {
        self.msh_component(11, 1)
    }

    /// MSH-12.1, the version id (`2.5.1`); MSH-12 may carry more components
    /// (`2.3.1^AUS&&ISO^AS4700.2&&L`).
    pub fn version(&self) -> Cow<'_, str> {
        self.msh_component(12, 1)
    }

    /// MSH-15, the accept acknowledgment type (`AL`, `NE`, `ER`, `SU`); empty means the
    /// original acknowledgment mode.
    pub fn accept_ack_type(&self) -> Cow<'_, str> {
        self.msh_component(15, 1)
    }

    /// MSH-16, the application acknowledgment type.
    pub fn application_ack_type(&self) -> Cow<'_, str> {
        self.msh_component(16, 1)
    }

    /// MSH-18 as written (first repetition), such as `UNICODE UTF-8` or `8859/1`.
    pub fn character_set(&self) -> Cow<'_, str> {
        self.msh().field(18).repetition(1).value()
    }
}

/// The segments, each exactly as in the input (trailing empty fields and separators kept)
/// and each ended by CR, the segment terminator of chapter 2. The differences from the input
/// are the normalisations of parsing: no byte order mark, CR instead of LF or CRLF, no blank
/// lines, no spaces or tabs at the end of a segment; and the text is the decoded text
/// (encode it with [`Charset::encode`] to get bytes in the message's character set).
///
/// The last segment is terminated too: without that CR, a one-segment message whose fields
/// hold line feeds would be split on them when parsed again (B04's rule).
impl fmt::Display for Message<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &(start, end) in &self.segments {
            f.write_str(&self.text[start..end])?;
            f.write_str("\r")?;
        }
        Ok(())
    }
}

/// Shows the structure only: message content is patient data and Debug output ends up in logs.
impl fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.segments().map(|s| s.id()).collect();
        f.debug_struct("Message")
            .field("segments", &ids)
            .field("delimiters", &self.ctx.delimiters.encoding_characters())
            .field("charset", &self.ctx.charset)
            .field("borrowed", &self.is_borrowed())
            .finish()
    }
}

/// Finds the delimiters and the segments. Terminators (B04): if the text contains a CR,
/// only CR ends a segment (a CRLF's LF, blank lines, and LFs inside fields are data or
/// skipped accordingly); without any CR, LF ends segments and a warning says so.
fn index_segments(
    text: &str,
    warnings: &mut Vec<ParseWarning>,
) -> Result<(Delimiters, Vec<(usize, usize)>), ParseError> {
    let bytes = text.as_bytes();
    let start = bytes
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(bytes.len());
    if text[start..].trim().is_empty() {
        return Err(ParseError::Empty);
    }
    let delimiters = read_delimiters(&bytes[start..])?;
    let mut segments = Vec::with_capacity(32);
    // Split on LF until a CR shows up (then start again on CR): this finds out whether the
    // input has any CR without a separate pass over it.
    match split_segments(bytes, start, delimiters.field, false, &mut segments)? {
        Split::Done { saw_lf: true } => warnings.push(ParseWarning::LfSegmentTerminators),
        Split::Done { saw_lf: false } => {}
        Split::FoundCr => {
            segments.clear();
            split_segments(bytes, start, delimiters.field, true, &mut segments)?;
        }
    }
    Ok((delimiters, segments))
}

enum Split {
    Done {
        saw_lf: bool,
    },
    /// Splitting on LF met a CR: the input must be split on CR instead.
    FoundCr,
}

fn split_segments(
    bytes: &[u8],
    start: usize,
    field: u8,
    on_cr: bool,
    segments: &mut Vec<(usize, usize)>,
) -> Result<Split, ParseError> {
    let mut saw_lf = false;
    let mut position = start;
    while position < bytes.len() {
        match bytes[position] {
            b'\n' => {
                saw_lf = true;
                position += 1;
                continue;
            }
            b'\r' if !on_cr => return Ok(Split::FoundCr),
            b'\r' => {
                position += 1;
                continue;
            }
            _ => {}
        }
        let rest = &bytes[position..];
        let found = if on_cr {
            find_byte(rest, b'\r')
        } else {
            find_either(rest, b'\n', b'\r')
        };
        let end = found.map_or(bytes.len(), |i| position + i);
        if !on_cr && end < bytes.len() {
            if bytes[end] == b'\r' {
                return Ok(Split::FoundCr);
            }
            saw_lf = true;
        }
        // Trailing spaces are padding some senders add (fixture ADT01-23); a LF before the
        // CR is a reversed line ending, not data.
        let mut trimmed = end;
        while trimmed > position && matches!(bytes[trimmed - 1], b' ' | b'\t' | b'\n') {
            trimmed -= 1;
        }
        if trimmed > position {
            if let Err(error) = check_segment(&bytes[position..trimmed], field, segments.len() + 1)
            {
                // On LF, a line that is no segment may be the data of a CR-terminated one.
                if !on_cr && bytes[end..].contains(&b'\r') {
                    return Ok(Split::FoundCr);
                }
                return Err(error);
            }
            segments.push((position, trimmed));
        }
        position = end + 1;
    }
    Ok(Split::Done { saw_lf })
}

/// A segment starts with a three-character id followed by the field separator (or nothing),
/// and only the first one may be a header.
fn check_segment(segment: &[u8], field: u8, number: usize) -> Result<(), ParseError> {
    let id_ok = segment.len() >= 3
        && segment[..3].iter().all(u8::is_ascii_alphanumeric)
        && (segment.len() == 3 || segment[3] == field);
    if !id_ok {
        return Err(ParseError::InvalidSegmentId { segment: number });
    }
    if number > 1 && is_envelope_or_header(&[segment[0], segment[1], segment[2]]) {
        return Err(ParseError::UnexpectedHeader {
            segment: number,
            id: String::from_utf8_lossy(&segment[..3]).into_owned(),
        });
    }
    Ok(())
}

/// MSH, and the batch envelope segments of chapter 2's batch protocol.
pub(crate) fn is_envelope_or_header(id: &[u8; 3]) -> bool {
    // Arrays, not slices: slice comparisons become calls to memcmp.
    matches!(id, b"MSH" | b"FHS" | b"BHS" | b"BTS" | b"FTS")
}

/// Reads MSH-1 and MSH-2 from the start of the MSH segment.
pub(crate) fn read_delimiters(segment: &[u8]) -> Result<Delimiters, ParseError> {
    if !segment.starts_with(b"MSH") {
        let batch = segment.starts_with(b"FHS") || segment.starts_with(b"BHS");
        return Err(ParseError::DoesNotStartWithMsh { batch });
    }
    let field = match segment.get(3) {
        Some(&b) if b.is_ascii_punctuation() => b,
        _ => return Err(ParseError::InvalidFieldSeparator),
    };
    let rest = &segment[4..];
    let end = rest
        .iter()
        .position(|&b| b == field || b == b'\r' || b == b'\n')
        .unwrap_or(rest.len());
    let encoding =
        std::str::from_utf8(&rest[..end]).map_err(|_| ParseError::InvalidEncodingCharacters {
            reason: "each must be printable ASCII punctuation",
        })?;
    Delimiters::new(field as char, encoding)
}

/// Iterator over the segments of a message.
#[derive(Clone)]
pub struct Segments<'m> {
    text: &'m str,
    spans: std::iter::Enumerate<std::slice::Iter<'m, (usize, usize)>>,
    ctx: &'m Ctx,
}

impl<'m> Segments<'m> {
    fn make(&self, (index, &(start, end)): (usize, &(usize, usize))) -> Segment<'m> {
        Segment {
            raw: &self.text[start..end],
            position: index + 1,
            ctx: self.ctx,
        }
    }
}

impl<'m> Iterator for Segments<'m> {
    type Item = Segment<'m>;

    fn next(&mut self) -> Option<Segment<'m>> {
        let next = self.spans.next()?;
        Some(self.make(next))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.spans.size_hint()
    }

    fn nth(&mut self, n: usize) -> Option<Segment<'m>> {
        let next = self.spans.nth(n)?;
        Some(self.make(next))
    }
}

impl DoubleEndedIterator for Segments<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        let next = self.spans.next_back()?;
        Some(self.make(next))
    }
}

impl ExactSizeIterator for Segments<'_> {}

/// One segment: its id and its fields.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Segment<'m> {
    raw: &'m str,
    position: usize,
    ctx: &'m Ctx,
}

impl<'m> Segment<'m> {
    /// The segment id (`MSH`, `PID`, `ZXY`).
    pub fn id(&self) -> &'m str {
        // Checked at parse time: three ASCII letters or digits.
        &self.raw[..3]
    }

    /// The segment's text, without its terminator.
    pub fn raw(&self) -> &'m str {
        self.raw
    }

    /// 1-based position of the segment in the message (the MSH is 1).
    pub fn position(&self) -> usize {
        self.position
    }

    fn is_msh(&self) -> bool {
        // The MSH is always first and parsing refuses a second one; comparing the position
        // is cheaper than comparing ids for every field access.
        self.position == 1
    }

    fn piece(&self, index: usize) -> &'m str {
        Pieces::new(self.raw, Some(self.ctx.delimiters.field))
            .nth(index)
            .unwrap_or("")
    }

    /// Field `n` (1-based; HL7 numbering, so `MSH-1` is the field separator). Past the end,
    /// or for 0, an empty field.
    pub fn field(&self, n: usize) -> Field<'m> {
        let (raw, literal) = match (self.is_msh(), n) {
            (_, 0) => ("", false),
            (true, 1) => (self.raw.get(3..4).unwrap_or(""), true),
            (true, 2) => (self.piece(1), true),
            (true, n) => (self.piece(n - 1), false),
            (false, n) => (self.piece(n), false),
        };
        Field {
            raw,
            ctx: self.ctx,
            literal,
        }
    }

    /// The fields in order, from field 1 (for MSH, from MSH-1) to the last one present;
    /// `enumerate()` plus one gives the HL7 field number.
    pub fn fields(&self) -> Fields<'m> {
        let mut pieces = Pieces::new(self.raw, Some(self.ctx.delimiters.field));
        pieces.next(); // the segment id
        Fields {
            pieces,
            ctx: self.ctx,
            msh_separator: if self.is_msh() {
                self.raw.get(3..4)
            } else {
                None
            },
            next_is_encoding_characters: false,
        }
    }

    /// The number of the last field present (trailing empty fields count: `PID|1||` has 3).
    pub fn field_count(&self) -> usize {
        let separators = self
            .raw
            .bytes()
            .filter(|&b| b == self.ctx.delimiters.field)
            .count();
        if self.is_msh() {
            separators + 1
        } else {
            separators
        }
    }
}

/// Iterator over the fields of a segment.
#[derive(Clone)]
pub struct Fields<'m> {
    pieces: Pieces<'m>,
    ctx: &'m Ctx,
    msh_separator: Option<&'m str>,
    next_is_encoding_characters: bool,
}

impl<'m> Iterator for Fields<'m> {
    type Item = Field<'m>;

    #[inline]
    fn next(&mut self) -> Option<Field<'m>> {
        if let Some(separator) = self.msh_separator.take() {
            self.next_is_encoding_characters = true;
            return Some(Field {
                raw: separator,
                ctx: self.ctx,
                literal: true,
            });
        }
        let raw = self.pieces.next()?;
        let literal = std::mem::take(&mut self.next_is_encoding_characters);
        Some(Field {
            raw,
            ctx: self.ctx,
            literal,
        })
    }
}

/// Debug output of the parts names the part and its length, never its text: message
/// content is patient data, and Debug output ends up in logs.
macro_rules! debug_without_content {
    ($($name:ident),*) => {$(
        impl fmt::Debug for $name<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name)).field("len", &self.raw.len()).finish()
            }
        }
    )*};
}

debug_without_content!(Field, Repetition, Component, SubComponent);

impl fmt::Debug for Segment<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Segment")
            .field("id", &self.id())
            .field("position", &self.position)
            .field("len", &self.raw.len())
            .finish()
    }
}

impl fmt::Debug for Fields<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fields").finish_non_exhaustive()
    }
}

/// The parts shared by fields, repetitions, components and subcomponents.
macro_rules! common_methods {
    () => {
        /// The raw text, escape sequences and all.
        pub fn raw(&self) -> &'m str {
            self.raw
        }

        /// True when empty (not sent).
        pub fn is_empty(&self) -> bool {
            self.raw.is_empty()
        }

        /// True for the HL7 null `""`, which means "delete the stored value" (chapter 2,
        /// "Null values in fields"), unlike an empty value, which means "not sent".
        pub fn is_null(&self) -> bool {
            self.raw == "\"\""
        }
    };
}

/// One field: its repetitions, each with components and subcomponents.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Field<'m> {
    raw: &'m str,
    ctx: &'m Ctx,
    /// MSH-1 and MSH-2: returned as written, never split or unescaped.
    literal: bool,
}

impl<'m> Field<'m> {
    common_methods!();

    /// Repetition `n` (1-based), empty past the end. Without a declared repetition separator
    /// the field is its only repetition.
    pub fn repetition(&self, n: usize) -> Repetition<'m> {
        let sep = if self.literal {
            None
        } else {
            self.ctx.delimiters.repetition
        };
        Repetition {
            raw: nth(self.raw, sep, n),
            ctx: self.ctx,
            literal: self.literal,
        }
    }

    /// The repetitions in order; none for an empty field.
    pub fn repetitions(&self) -> impl Iterator<Item = Repetition<'m>> + 'm {
        let sep = if self.literal {
            None
        } else {
            self.ctx.delimiters.repetition
        };
        let (ctx, literal) = (self.ctx, self.literal);
        Pieces::non_empty(self.raw, sep).map(move |raw| Repetition { raw, ctx, literal })
    }

    /// Component `n` of the first repetition.
    pub fn component(&self, n: usize) -> Component<'m> {
        self.repetition(1).component(n)
    }

    /// The decoded first value: first repetition, first component, first subcomponent. This
    /// is how chapter 2 tells a receiver that expects a primitive to read a composite, and the
    /// whole value for the many fields that are primitives. For free text (TX, FT) use
    /// [`Field::text`].
    pub fn value(&self) -> Cow<'m, str> {
        self.component(1).value()
    }

    /// The decoded text of the whole field, separators left as they are. Meant for TX/FT
    /// fields (NTE-3, OBX-5 of type TX), where a sender's unescaped `^` or `&` is still text.
    pub fn text(&self) -> Cow<'m, str> {
        decode(self.raw, self.ctx, self.literal)
    }
}

/// One repetition of a field.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Repetition<'m> {
    raw: &'m str,
    ctx: &'m Ctx,
    literal: bool,
}

impl<'m> Repetition<'m> {
    common_methods!();

    fn component_separator(&self) -> Option<u8> {
        if self.literal {
            None
        } else {
            Some(self.ctx.delimiters.component)
        }
    }

    /// Component `n` (1-based), empty past the end.
    pub fn component(&self, n: usize) -> Component<'m> {
        Component {
            raw: nth(self.raw, self.component_separator(), n),
            ctx: self.ctx,
            literal: self.literal,
        }
    }

    /// The components in order, empty ones included (they keep positions).
    pub fn components(&self) -> impl Iterator<Item = Component<'m>> + 'm {
        let (ctx, literal) = (self.ctx, self.literal);
        Pieces::non_empty(self.raw, self.component_separator()).map(move |raw| Component {
            raw,
            ctx,
            literal,
        })
    }

    /// The decoded first component's first subcomponent.
    pub fn value(&self) -> Cow<'m, str> {
        self.component(1).value()
    }

    /// The decoded text of the whole repetition.
    pub fn text(&self) -> Cow<'m, str> {
        decode(self.raw, self.ctx, self.literal)
    }
}

/// One component.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Component<'m> {
    raw: &'m str,
    ctx: &'m Ctx,
    literal: bool,
}

impl<'m> Component<'m> {
    common_methods!();

    fn subcomponent_separator(&self) -> Option<u8> {
        if self.literal {
            None
        } else {
            self.ctx.delimiters.subcomponent
        }
    }

    /// Subcomponent `n` (1-based), empty past the end. Without a declared subcomponent
    /// separator the component is its only subcomponent.
    pub fn subcomponent(&self, n: usize) -> SubComponent<'m> {
        SubComponent {
            raw: nth(self.raw, self.subcomponent_separator(), n),
            ctx: self.ctx,
            literal: self.literal,
        }
    }

    /// The subcomponents in order.
    pub fn subcomponents(&self) -> impl Iterator<Item = SubComponent<'m>> + 'm {
        let (ctx, literal) = (self.ctx, self.literal);
        Pieces::non_empty(self.raw, self.subcomponent_separator()).map(move |raw| SubComponent {
            raw,
            ctx,
            literal,
        })
    }

    /// The decoded first subcomponent.
    pub fn value(&self) -> Cow<'m, str> {
        self.subcomponent(1).value()
    }

    /// The decoded text of the whole component.
    pub fn text(&self) -> Cow<'m, str> {
        decode(self.raw, self.ctx, self.literal)
    }
}

/// One subcomponent, the smallest part.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SubComponent<'m> {
    raw: &'m str,
    ctx: &'m Ctx,
    literal: bool,
}

impl<'m> SubComponent<'m> {
    common_methods!();

    /// The decoded value.
    pub fn value(&self) -> Cow<'m, str> {
        decode(self.raw, self.ctx, self.literal)
    }
}

fn decode<'m>(raw: &'m str, ctx: &Ctx, literal: bool) -> Cow<'m, str> {
    if literal {
        Cow::Borrowed(raw)
    } else {
        unescape(raw, &ctx.delimiters, ctx.charset)
    }
}

/// Piece `n` (1-based) of `raw` split at `sep`; without a separator `raw` is piece 1.
fn nth(raw: &str, sep: Option<u8>, n: usize) -> &str {
    if n == 0 {
        return "";
    }
    Pieces::new(raw, sep).nth(n - 1).unwrap_or("")
}

/// The first position of a byte, eight bytes at a time (SWAR: no `unsafe`, no SIMD
/// intrinsics). Fields and components are mostly a few bytes long, where this beats the
/// setup cost of `memchr`, and it stays fast on long values (base64 in OBX-5).
#[inline]
pub(crate) fn find_byte(bytes: &[u8], needle: u8) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let pattern = LO * u64::from(needle);
    let (words, rest) = bytes.as_chunks::<8>();
    for (i, word) in words.iter().enumerate() {
        let x = u64::from_le_bytes(*word) ^ pattern;
        // A zero byte of `x` is a match. The lowest flagged byte is always a true match
        // (false positives can only appear above a true one), so trailing_zeros finds it.
        let found = x.wrapping_sub(LO) & !x & HI;
        if found != 0 {
            return Some(i * 8 + (found.trailing_zeros() / 8) as usize);
        }
    }
    rest.iter()
        .position(|&b| b == needle)
        .map(|i| words.len() * 8 + i)
}

/// The first position of either byte, as [`find_byte`].
#[inline]
fn find_either(bytes: &[u8], a: u8, b: u8) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let (pa, pb) = (LO * u64::from(a), LO * u64::from(b));
    let (words, rest) = bytes.as_chunks::<8>();
    for (i, word) in words.iter().enumerate() {
        let word = u64::from_le_bytes(*word);
        let (xa, xb) = (word ^ pa, word ^ pb);
        // Each mask's lowest flag is a true match, so the lowest of both is the first match.
        let found = (xa.wrapping_sub(LO) & !xa | xb.wrapping_sub(LO) & !xb) & HI;
        if found != 0 {
            return Some(i * 8 + (found.trailing_zeros() / 8) as usize);
        }
    }
    rest.iter()
        .position(|&x| x == a || x == b)
        .map(|i| words.len() * 8 + i)
}

/// Splits at an ASCII separator, eight bytes at a time: a word's matching bytes become a bit
/// mask that the following calls consume one by one, so walking every field of a segment
/// reads each byte once and costs a few instructions per field.
#[derive(Clone)]
struct Pieces<'m> {
    text: &'m str,
    /// `None`: no separator, the text is one piece.
    sep: Option<u8>,
    /// Start of the next piece.
    start: usize,
    /// Offset of the word that `mask` describes.
    base: usize,
    /// Separators in that word not yet consumed, as the high bit of each matching byte.
    mask: u64,
    finished: bool,
}

const LO: u64 = 0x0101_0101_0101_0101;
const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;

/// The bytes of the word at `base` equal to `sep`, as high bits. Exact, unlike the `find_byte`
/// trick: the additions cannot carry from one byte into the next.
#[inline]
fn separator_mask(bytes: &[u8], base: usize, sep: u8) -> u64 {
    let word = match bytes
        .get(base..base + 8)
        .and_then(|w| <[u8; 8]>::try_from(w).ok())
    {
        Some(word) => word,
        None => last_word(bytes, base, sep),
    };
    let x = u64::from_le_bytes(word) ^ (LO * u64::from(sep));
    !(((x & LOW7) + LOW7) | x | LOW7)
}

/// The last, partial word, padded with a byte that is not the separator.
#[inline]
fn last_word(bytes: &[u8], base: usize, sep: u8) -> [u8; 8] {
    let mut word = [!sep; 8];
    let tail = bytes.get(base..).unwrap_or_default();
    word[..tail.len()].copy_from_slice(tail);
    word
}

impl<'m> Pieces<'m> {
    fn new(raw: &'m str, sep: Option<u8>) -> Self {
        let mask = match sep {
            Some(sep) if !raw.is_empty() => separator_mask(raw.as_bytes(), 0, sep),
            _ => 0,
        };
        Pieces {
            text: raw,
            sep,
            start: 0,
            base: 0,
            mask,
            finished: false,
        }
    }

    /// As `new`, but an empty text has no pieces at all.
    fn non_empty(raw: &'m str, sep: Option<u8>) -> Self {
        let mut pieces = Pieces::new(raw, sep);
        pieces.finished = raw.is_empty();
        pieces
    }
}

impl<'m> Iterator for Pieces<'m> {
    type Item = &'m str;

    #[inline(always)]
    fn next(&mut self) -> Option<&'m str> {
        if self.finished {
            return None;
        }
        let Some(sep) = self.sep else {
            self.finished = true;
            return Some(self.text);
        };
        let bytes = self.text.as_bytes();
        loop {
            if self.mask != 0 {
                let at = self.base + (self.mask.trailing_zeros() / 8) as usize;
                self.mask &= self.mask - 1;
                // `at` is an ASCII separator, so both ends are character boundaries.
                let piece = &self.text[self.start..at];
                self.start = at + 1;
                return Some(piece);
            }
            self.base += 8;
            if self.base >= bytes.len() {
                self.finished = true;
                return Some(&self.text[self.start..]);
            }
            self.mask = separator_mask(bytes, self.base, sep);
        }
    }

    /// Skips `n` pieces by counting separators a word at a time (`field(18)` need not visit
    /// the seventeen fields before it one by one).
    fn nth(&mut self, mut n: usize) -> Option<&'m str> {
        if n == 0 || self.finished {
            return self.next();
        }
        let Some(sep) = self.sep else {
            self.finished = true;
            return None;
        };
        let bytes = self.text.as_bytes();
        loop {
            let count = self.mask.count_ones() as usize;
            if count >= n {
                for _ in 1..n {
                    self.mask &= self.mask - 1;
                }
                let at = self.base + (self.mask.trailing_zeros() / 8) as usize;
                self.mask &= self.mask - 1;
                self.start = at + 1;
                return self.next();
            }
            n -= count;
            self.mask = 0;
            self.base += 8;
            if self.base >= bytes.len() {
                self.finished = true;
                return None;
            }
            self.mask = separator_mask(bytes, self.base, sep);
        }
    }
}

/// Whatever a path points at.
enum Part<'m> {
    Field(Field<'m>),
    Repetition(Repetition<'m>),
    Component(Component<'m>),
    SubComponent(SubComponent<'m>),
}

impl<'m> Part<'m> {
    fn raw(&self) -> &'m str {
        match self {
            Part::Field(p) => p.raw(),
            Part::Repetition(p) => p.raw(),
            Part::Component(p) => p.raw(),
            Part::SubComponent(p) => p.raw(),
        }
    }

    fn value(&self) -> Cow<'m, str> {
        match self {
            Part::Field(p) => p.value(),
            Part::Repetition(p) => p.value(),
            Part::Component(p) => p.value(),
            Part::SubComponent(p) => p.value(),
        }
    }
}

/// `SEG[(k)]-F[(r)][.C[.S]]`, every number 1-based.
#[derive(Debug, PartialEq, Eq)]
struct Path<'p> {
    segment: &'p str,
    segment_index: usize,
    field: usize,
    repetition: Option<usize>,
    component: Option<usize>,
    subcomponent: Option<usize>,
}

impl<'p> Path<'p> {
    fn parse(path: &'p str) -> Option<Self> {
        let segment = path.get(..3)?;
        if !segment.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return None;
        }
        let mut rest = &path[3..];
        let segment_index = take_index(&mut rest)?.unwrap_or(1);
        rest = rest.strip_prefix('-')?;
        let field = take_number(&mut rest)?;
        let repetition = take_index(&mut rest)?;
        let mut dotted = [None, None];
        for slot in &mut dotted {
            if let Some(after) = rest.strip_prefix('.') {
                rest = after;
                *slot = Some(take_number(&mut rest)?);
            }
        }
        if !rest.is_empty() {
            return None;
        }
        Some(Path {
            segment,
            segment_index,
            field,
            repetition,
            component: dotted[0],
            subcomponent: dotted[1],
        })
    }
}

/// A number of at least 1 at the start of `rest`.
fn take_number(rest: &mut &str) -> Option<usize> {
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let number: usize = rest[..digits].parse().ok()?;
    *rest = &rest[digits..];
    (number >= 1).then_some(number)
}

/// An optional `(n)`: `Some(None)` when absent, `None` when malformed.
fn take_index(rest: &mut &str) -> Option<Option<usize>> {
    let Some(after) = rest.strip_prefix('(') else {
        return Some(None);
    };
    *rest = after;
    let number = take_number(rest)?;
    *rest = rest.strip_prefix(')')?;
    Some(Some(number))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_read_in_hl7_notation() {
        assert_eq!(
            Path::parse("OBX(3)-5(2).4.1"),
            Some(Path {
                segment: "OBX",
                segment_index: 3,
                field: 5,
                repetition: Some(2),
                component: Some(4),
                subcomponent: Some(1),
            })
        );
        assert_eq!(Path::parse("PV1-3.4").map(|p| p.component), Some(Some(4)));
        for bad in [
            "PID",
            "PID-",
            "PID-0",
            "PID-3.",
            "PID-3.4.5.6",
            "PI-3",
            "PID(0)-1",
            "PID-1x",
        ] {
            assert_eq!(Path::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn skipping_pieces_gives_the_same_as_walking_them() {
        let text = "a|bb||ccc|d|eeeeeeeeeeeeeeeeeeeee|f||||g|µ|h";
        let all: Vec<&str> = Pieces::new(text, Some(b'|')).collect();
        for n in 0..all.len() + 3 {
            assert_eq!(
                Pieces::new(text, Some(b'|')).nth(n),
                all.get(n).copied(),
                "{n}"
            );
            let mut pieces = Pieces::new(text, Some(b'|'));
            pieces.next();
            assert_eq!(pieces.nth(n), all.get(n + 1).copied(), "after one, {n}");
        }
        assert_eq!(Pieces::new("abc", None).nth(1), None);
        assert_eq!(Pieces::new("", Some(b'|')).nth(1), None);
        assert_eq!(Pieces::non_empty("", Some(b'|')).nth(1), None);
    }

    #[test]
    fn pieces_keep_empty_positions() {
        let pieces: Vec<&str> = Pieces::new("a^^b^", Some(b'^')).collect();
        assert_eq!(pieces, ["a", "", "b", ""]);
        assert_eq!(Pieces::non_empty("", Some(b'^')).count(), 0);
        assert_eq!(nth("723327^^^SLM^^^^^^^DEPID", Some(b'^'), 11), "DEPID");
    }
}
