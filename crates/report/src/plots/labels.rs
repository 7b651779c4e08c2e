//! Text for plots: shortening movie titles, estimating how much room a label takes, cleaning
//! characters XML cannot carry, and the greedy label placement the scatter plot uses.
//!
//! Placement is plain geometry in pixel space, kept apart from drawing so tests can check it:
//! labels are placed in priority order; each tries positions around its point (right, left,
//! above, below, then the diagonals), first next to the marker and then further out with a leader
//! line; the first position inside the plot that overlaps no placed label and no marker wins.
//! A label with no free position is left out (the plot says how many were).

/// An axis-aligned rectangle in pixels, `x0 <= x1`, `y0 <= y1` (y grows downwards).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rect {
    pub x0: f64,
    pub y0: f64,
    pub x1: f64,
    pub y1: f64,
}

impl Rect {
    /// The rectangle of width `w` and height `h` whose top-left corner is `(x, y)`.
    pub fn at(x: f64, y: f64, w: f64, h: f64) -> Rect {
        Rect { x0: x, y0: y, x1: x + w, y1: y + h }
    }

    /// The square of half-side `r` centred on `(x, y)`.
    pub fn around(x: f64, y: f64, r: f64) -> Rect {
        Rect { x0: x - r, y0: y - r, x1: x + r, y1: y + r }
    }

    /// True when the interiors intersect (touching edges do not count).
    pub fn overlaps(&self, other: &Rect) -> bool {
        self.x0 < other.x1 && other.x0 < self.x1 && self.y0 < other.y1 && other.y0 < self.y1
    }

    /// True when `self` lies entirely inside `outer`.
    pub fn inside(&self, outer: &Rect) -> bool {
        self.x0 >= outer.x0 && self.x1 <= outer.x1 && self.y0 >= outer.y0 && self.y1 <= outer.y1
    }

    /// The point of the rectangle nearest to `(x, y)` (where a leader line should end).
    pub fn nearest_point(&self, x: f64, y: f64) -> (f64, f64) {
        (x.clamp(self.x0, self.x1), y.clamp(self.y0, self.y1))
    }
}

/// Where one label went.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlacedLabel {
    /// The label's box (text drawn with its top-left corner at `(x0, y0)`).
    pub rect: Rect,
    /// Whether the label sits away from its point and needs a leader line.
    pub leader: bool,
}

/// Width of a rendered text run in pixels, for a sans-serif font of `font_px` pixels.
///
/// Browsers' sans-serif faces (DejaVu Sans, Liberation Sans, Arial) average about 0.5 em per
/// character over mixed-case titles (measured: 0.48 em for DejaVu Sans in headless Chromium);
/// 0.56 em errs on the wide side so that boxes judged disjoint do not touch on screen.
pub fn text_width(text: &str, font_px: f64) -> f64 {
    text.chars().count() as f64 * font_px * 0.56
}

/// Replaces characters XML 1.0 cannot carry (control characters, U+FFFE, U+FFFF) with spaces.
/// Escaping `&`, `<`, quotes is done where the text is written (plotters and the HTML writer).
pub fn clean_text(text: &str) -> String {
    text.chars().map(|c| if c.is_control() || c == '\u{FFFE}' || c == '\u{FFFF}' { ' ' } else { c }).collect()
}

/// Articles MovieLens moves to the end of a title ("Godfather, The").
const MOVED_ARTICLES: &[&str] =
    &["The", "A", "An", "Les", "La", "Le", "L'", "Il", "Das", "Der", "Die", "El", "Los", "Las"];

/// Shortens a movie title for a plot label to at most `max_chars` characters.
///
/// In order, stopping as soon as it fits (the first two steps always apply):
/// 1. drop a trailing year in parentheses: "Star Wars (1977)" -> "Star Wars";
/// 2. drop an article MovieLens moved to the end: "Godfather, The" -> "Godfather";
/// 3. drop trailing parenthesised alternative titles: "Seven (Se7en)" -> "Seven";
/// 4. drop a leading article: "The Good, the Bad and the Ugly" -> "Good, the Bad and the Ugly";
/// 5. cut at a word boundary (or mid-word when the last word is long) and end with "…".
pub fn shorten_title(title: &str, max_chars: usize) -> String {
    let max_chars = max_chars.max(2);
    let mut text = clean_text(title).split_whitespace().collect::<Vec<_>>().join(" ");
    if let Some(stripped) = strip_trailing_year(&text) {
        text = stripped;
    }
    for article in MOVED_ARTICLES {
        let suffix = format!(", {article}");
        if text.len() > suffix.len() && text.ends_with(&suffix) {
            text.truncate(text.len() - suffix.len());
            break;
        }
    }
    while text.chars().count() > max_chars {
        match strip_trailing_parenthetical(&text) {
            Some(stripped) => text = stripped,
            None => break,
        }
    }
    if text.chars().count() > max_chars {
        for article in ["The ", "A ", "An "] {
            if text.len() > article.len() + 1 && text.starts_with(article) {
                text = text[article.len()..].to_owned();
                break;
            }
        }
    }
    if text.chars().count() > max_chars {
        text = truncate_with_ellipsis(&text, max_chars);
    }
    text
}

/// "Title (1995)" -> Some("Title"); also "Title (1995-1996)". None when there is no such year.
fn strip_trailing_year(text: &str) -> Option<String> {
    let inner = text.strip_suffix(')')?;
    let open = inner.rfind('(')?;
    let year = &inner[open + 1..];
    let is_year = |s: &str| s.len() == 4 && s.bytes().all(|b| b.is_ascii_digit());
    let ok = is_year(year)
        || year.split_once('-').is_some_and(|(a, b)| is_year(a) && (b.is_empty() || is_year(b)));
    let rest = inner[..open].trim_end();
    (ok && !rest.is_empty()).then(|| rest.to_owned())
}

/// "Seven (Se7en)" -> Some("Seven"); None when there is no trailing group or nothing before it.
fn strip_trailing_parenthetical(text: &str) -> Option<String> {
    let inner = text.strip_suffix(')')?;
    let open = inner.rfind('(')?;
    let rest = inner[..open].trim_end();
    (!rest.is_empty()).then(|| rest.to_owned())
}

/// Cuts to `max_chars - 1` characters plus "…", at a word end when one falls within the last
/// third of the room, trimming trailing spaces and punctuation before the ellipsis.
fn truncate_with_ellipsis(text: &str, max_chars: usize) -> String {
    let keep: String = text.chars().take(max_chars - 1).collect();
    let at_word_end = text.chars().nth(max_chars - 1).is_some_and(char::is_whitespace);
    let cut = match keep.rfind(' ') {
        _ if at_word_end => keep.as_str(),
        Some(space) if keep[..space].chars().count() * 3 >= (max_chars - 1) * 2 => &keep[..space],
        _ => keep.as_str(),
    };
    let cut = cut.trim_end_matches(|c: char| c.is_whitespace() || ",;:-–(".contains(c));
    format!("{cut}…")
}

/// Places labels around their points without overlaps.
///
/// `points` are pixel positions, `sizes` the (width, height) of each label, `marker_radius` the
/// half-size of the point markers (labels may not cover any marker), `bounds` the area labels must
/// stay inside. Labels are placed in the order given (put the most important first). Returns one
/// entry per point: `None` when no free position was found.
pub fn place_labels(
    points: &[(f64, f64)],
    sizes: &[(f64, f64)],
    marker_radius: f64,
    bounds: Rect,
) -> Vec<Option<PlacedLabel>> {
    let markers: Vec<Rect> = points.iter().map(|&(x, y)| Rect::around(x, y, marker_radius)).collect();
    let mut taken: Vec<Rect> = Vec::with_capacity(points.len());
    let mut placed = Vec::with_capacity(points.len());
    for (&(px, py), &(w, h)) in points.iter().zip(sizes) {
        let mut found = None;
        'rings: for (ring, extra) in [0.0, 14.0, 30.0, 50.0].into_iter().enumerate() {
            let gap = marker_radius + 2.0 + extra;
            let diagonal = gap * std::f64::consts::FRAC_1_SQRT_2;
            let candidates = [
                Rect::at(px + gap, py - h / 2.0, w, h),
                Rect::at(px - gap - w, py - h / 2.0, w, h),
                Rect::at(px - w / 2.0, py - gap - h, w, h),
                Rect::at(px - w / 2.0, py + gap, w, h),
                Rect::at(px + diagonal, py - diagonal - h, w, h),
                Rect::at(px - diagonal - w, py - diagonal - h, w, h),
                Rect::at(px + diagonal, py + diagonal, w, h),
                Rect::at(px - diagonal - w, py + diagonal, w, h),
            ];
            for rect in candidates {
                let free = rect.inside(&bounds)
                    && !taken.iter().any(|t| t.overlaps(&rect))
                    && !markers.iter().any(|m| m.overlaps(&rect));
                if free {
                    found = Some(PlacedLabel { rect, leader: ring > 0 });
                    break 'rings;
                }
            }
        }
        if let Some(label) = found {
            taken.push(label.rect);
        }
        placed.push(found);
    }
    placed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorten_drops_year_and_moved_article() {
        assert_eq!(shorten_title("Star Wars (1977)", 24), "Star Wars");
        assert_eq!(shorten_title("Godfather, The (1972)", 24), "Godfather");
        assert_eq!(shorten_title("Fish Called Wanda, A (1988)", 24), "Fish Called Wanda");
        assert_eq!(shorten_title("Twin Peaks (1992-1993)", 24), "Twin Peaks");
        // A title that is only a year-like group keeps it.
        assert_eq!(shorten_title("(1999)", 24), "(1999)");
    }

    #[test]
    fn shorten_drops_alternative_titles_then_leading_article_then_truncates() {
        assert_eq!(shorten_title("Seven (Se7en) (1995)", 24), "Seven (Se7en)");
        assert_eq!(
            shorten_title("Shanghai Triad (Yao a yao yao dao waipo qiao) (1995)", 24),
            "Shanghai Triad"
        );
        assert_eq!(shorten_title("The Good, the Bad and the Ugly (1966)", 24), "Good, the Bad and the…");
        let long =
            shorten_title("Dr. Strangelove or: How I Learned to Stop Worrying and Love the Bomb (1963)", 24);
        assert_eq!(long, "Dr. Strangelove or: How…");
        assert_eq!(long.chars().count(), 24);
    }

    #[test]
    fn shorten_counts_characters_not_bytes() {
        let title = "Amélie (Le fabuleux destin d'Amélie Poulain) (2001)";
        assert_eq!(shorten_title(title, 24), "Amélie");
        let cut = shorten_title("Ça ça ça ça ça ça ça ça ça ça ça", 10);
        assert!(cut.chars().count() <= 10, "{cut}");
        assert!(cut.ends_with('…'));
        assert_eq!(cut, "Ça ça ça…");
    }

    #[test]
    fn clean_text_removes_control_characters() {
        assert_eq!(clean_text("a\u{0}b\tc\u{FFFF}"), "a b c ");
        assert_eq!(clean_text("<&>\"'é"), "<&>\"'é");
    }

    #[test]
    fn rect_overlap_excludes_touching_edges() {
        let a = Rect::at(0.0, 0.0, 10.0, 10.0);
        assert!(a.overlaps(&Rect::at(9.0, 9.0, 5.0, 5.0)));
        assert!(!a.overlaps(&Rect::at(10.0, 0.0, 5.0, 5.0)));
        assert!(!a.overlaps(&Rect::at(0.0, 10.0, 5.0, 5.0)));
        assert_eq!(a.nearest_point(20.0, 5.0), (10.0, 5.0));
    }

    #[test]
    fn lone_label_goes_right_of_its_point() {
        let bounds = Rect::at(0.0, 0.0, 200.0, 200.0);
        let placed = place_labels(&[(100.0, 100.0)], &[(40.0, 10.0)], 3.0, bounds);
        let label = placed[0].expect("placed");
        assert_eq!(label.rect, Rect::at(105.0, 95.0, 40.0, 10.0));
        assert!(!label.leader);
    }

    #[test]
    fn label_at_right_edge_flips_left() {
        let bounds = Rect::at(0.0, 0.0, 200.0, 200.0);
        let placed = place_labels(&[(190.0, 100.0)], &[(40.0, 10.0)], 3.0, bounds);
        assert_eq!(placed[0].expect("placed").rect, Rect::at(145.0, 95.0, 40.0, 10.0));
    }

    #[test]
    fn crowded_labels_never_overlap_each_other_or_markers() {
        // 40 points in a 6 x 7 grid 18 px apart: too tight for every label next to its point.
        let points: Vec<(f64, f64)> =
            (0..40).map(|i| (150.0 + (i % 6) as f64 * 18.0, 120.0 + (i / 6) as f64 * 18.0)).collect();
        let sizes: Vec<(f64, f64)> = (0..40).map(|i| (40.0 + (i % 5) as f64 * 12.0, 12.0)).collect();
        let bounds = Rect::at(0.0, 0.0, 500.0, 400.0);
        let placed = place_labels(&points, &sizes, 3.0, bounds);
        let rects: Vec<Rect> = placed.iter().flatten().map(|p| p.rect).collect();
        for (i, a) in rects.iter().enumerate() {
            assert!(a.inside(&bounds));
            for b in &rects[i + 1..] {
                assert!(!a.overlaps(b), "{a:?} overlaps {b:?}");
            }
            for &(x, y) in &points {
                assert!(!a.overlaps(&Rect::around(x, y, 3.0)), "{a:?} covers the point ({x}, {y})");
            }
        }
        // The outer rings and leader lines let most labels find room.
        assert!(rects.len() >= 20, "only {} of 40 labels placed", rects.len());
        assert!(placed.iter().flatten().any(|p| p.leader));
    }
}
