//! Sequence corpora (`--sequences FILE`): any text of sequences, one per line, for item2vec
//! (CBOW / skip-gram) beyond MovieLens: viewing logs, playlists, sentences.
//!
//! - Tokens are separated by ASCII/Unicode whitespace, or by one delimiter character
//!   ([`CorpusOptions::delimiter`], fields trimmed); empty tokens are skipped, so a blank line
//!   is an empty sequence.
//! - The file must be UTF-8 without NUL bytes: a violation is [`DataError::Parse`] naming the
//!   file and the 1-based line. A UTF-8 byte-order mark at the start is skipped.
//! - The vocabulary is the tokens occurring at least `min_count` times (word2vec's `min_count`),
//!   the `max_vocab` most frequent of them when set; ordered by count, descending, ties by first
//!   appearance (gensim's order). Tokens outside it are removed from the sequences, as
//!   word2vec does. Token strings are kept: [`Corpus::tokens`] is the vocabulary by index.

use std::collections::HashMap;
use std::path::Path;

use crate::error::{DataError, ParseProblem};
use crate::types::{Catalogue, Dataset, Movie};

/// How a corpus file is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorpusOptions {
    /// Token separator: `None` = any whitespace (default), else this character.
    pub delimiter: Option<char>,
    /// Keep tokens occurring at least this often (1 keeps every token).
    pub min_count: u64,
    /// Keep at most this many of the most frequent tokens.
    pub max_vocab: Option<usize>,
}

impl Default for CorpusOptions {
    fn default() -> Self {
        Self { delimiter: None, min_count: 1, max_vocab: None }
    }
}

/// A tokenised corpus.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Corpus {
    /// The vocabulary: token string of each index.
    pub tokens: Vec<String>,
    /// Occurrences of each vocabulary token in the file.
    pub counts: Vec<u64>,
    /// One sequence per line (vocabulary indices; out-of-vocabulary tokens removed).
    pub sequences: Vec<Vec<u32>>,
    /// Token occurrences removed by `min_count` / `max_vocab`.
    pub dropped: u64,
}

impl Corpus {
    /// The vocabulary as a [`Dataset`] whose movies are the tokens (dense index = vocabulary
    /// index, raw id = index + 1, title = the token string) and whose one "user" holds one row
    /// per token: what item2vec's runs, exports and title queries read.
    pub fn vocabulary_dataset(&self) -> Result<Dataset, DataError> {
        let n = self.tokens.len();
        let raws: Vec<u64> = (1..=n as u64).collect();
        let times: Vec<i64> = (0..n as i64).collect();
        let mut ds = Dataset::from_triples(&vec![1; n], &raws, &vec![1.0; n], Some(&times))?;
        ds.catalogue = Catalogue::new(
            self.tokens
                .iter()
                .zip(&raws)
                .map(|(t, &raw_id)| Movie {
                    raw_id,
                    title: t.clone(),
                    full_title: t.clone(),
                    year: None,
                    genres: Vec::new(),
                })
                .collect(),
        );
        Ok(ds)
    }
}

/// Reads and tokenises `path`.
pub fn read_corpus(path: &Path, options: &CorpusOptions) -> Result<Corpus, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    parse_corpus(&bytes, path, options)
}

/// Tokenises `bytes` (the content of `path`, named in errors).
pub fn parse_corpus(bytes: &[u8], path: &Path, options: &CorpusOptions) -> Result<Corpus, DataError> {
    if options.min_count == 0 {
        return Err(DataError::Invalid("min_count must be at least 1".into()));
    }
    if options.max_vocab == Some(0) {
        return Err(DataError::Invalid("max_vocab must be at least 1".into()));
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut ids: HashMap<&str, u32> = HashMap::new();
    let mut first: Vec<&str> = Vec::new();
    let mut counts: Vec<u64> = Vec::new();
    let mut raw: Vec<Vec<u32>> = Vec::new();
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let line_no = i as u64 + 1;
        if line.contains(&0) {
            return Err(DataError::parse(
                path,
                line_no,
                ParseProblem::Other("NUL byte (a binary file?)".into()),
            ));
        }
        let text = std::str::from_utf8(line)
            .map_err(|_| DataError::parse(path, line_no, ParseProblem::InvalidUtf8))?;
        let text = text.strip_suffix('\r').unwrap_or(text);
        let mut seq = Vec::new();
        let tokens: Box<dyn Iterator<Item = &str>> = match options.delimiter {
            None => Box::new(text.split_whitespace()),
            Some(d) => Box::new(text.split(d).map(str::trim).filter(|t| !t.is_empty())),
        };
        for tok in tokens {
            let id = *ids.entry(tok).or_insert_with(|| {
                first.push(tok);
                counts.push(0);
                (first.len() - 1) as u32
            });
            counts[id as usize] += 1;
            seq.push(id);
        }
        raw.push(seq);
    }
    // A final newline ends the last line; it does not open an empty one.
    if bytes.ends_with(b"\n") {
        raw.pop();
    }
    let mut order: Vec<u32> =
        (0..first.len() as u32).filter(|&t| counts[t as usize] >= options.min_count).collect();
    order.sort_by(|&a, &b| counts[b as usize].cmp(&counts[a as usize]).then(a.cmp(&b)));
    if let Some(max) = options.max_vocab {
        order.truncate(max);
    }
    if order.is_empty() {
        return Err(DataError::Invalid(format!(
            "{}: no token occurs at least {} times (min_count)",
            path.display(),
            options.min_count
        )));
    }
    let mut new_id = vec![u32::MAX; first.len()];
    for (n, &old) in order.iter().enumerate() {
        new_id[old as usize] = n as u32;
    }
    let mut dropped = 0u64;
    let sequences = raw
        .into_iter()
        .map(|seq| {
            let kept: Vec<u32> = seq.iter().map(|&t| new_id[t as usize]).filter(|&t| t != u32::MAX).collect();
            dropped += (seq.len() - kept.len()) as u64;
            kept
        })
        .collect();
    Ok(Corpus {
        tokens: order.iter().map(|&t| first[t as usize].to_string()).collect(),
        counts: order.iter().map(|&t| counts[t as usize]).collect(),
        sequences,
        dropped,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(text: &[u8], options: &CorpusOptions) -> Result<Corpus, DataError> {
        parse_corpus(text, Path::new("corpus.txt"), options)
    }

    #[test]
    fn vocabulary_by_count_then_first_appearance() {
        let c = parse(b"the cat sat\nthe dog  sat\n\n\tthe end\n", &CorpusOptions::default()).unwrap();
        assert_eq!(c.tokens, ["the", "sat", "cat", "dog", "end"]);
        assert_eq!(c.counts, [3, 2, 1, 1, 1]);
        assert_eq!(c.sequences, vec![vec![0, 2, 1], vec![0, 3, 1], vec![], vec![0, 4]]);
        let rare = parse(
            b"the cat sat\nthe dog sat\nthe end",
            &CorpusOptions { min_count: 2, ..Default::default() },
        )
        .unwrap();
        assert_eq!(rare.tokens, ["the", "sat"]);
        assert_eq!(rare.sequences, vec![vec![0, 1], vec![0, 1], vec![0]]);
        assert_eq!(rare.dropped, 3);
        let top = parse(b"a b b c c c", &CorpusOptions { max_vocab: Some(2), ..Default::default() }).unwrap();
        assert_eq!(top.tokens, ["c", "b"]);
        assert_eq!(top.sequences, vec![vec![1, 1, 0, 0, 0]]);
    }

    #[test]
    fn vocabulary_dataset_keeps_token_strings() {
        let c = parse(b"b a b\nc b", &CorpusOptions::default()).unwrap();
        let ds = c.vocabulary_dataset().unwrap();
        assert_eq!(ds.movies.len(), 3);
        assert_eq!((0..3).map(|m| ds.title(m)).collect::<Vec<_>>(), ["b", "a", "c"]);
        assert_eq!(ds.movies.dense(2), Some(1));
    }

    #[test]
    fn delimiter_crlf_and_byte_order_mark() {
        let opts = CorpusOptions { delimiter: Some(','), ..Default::default() };
        let c = parse("\u{FEFF}Star Wars (1977), Alien (1979)\r\nAlien (1979),,Heat\r\n".as_bytes(), &opts)
            .unwrap();
        assert_eq!(c.tokens, ["Alien (1979)", "Star Wars (1977)", "Heat"]);
        assert_eq!(c.sequences, vec![vec![1, 0], vec![0, 2]]);
    }

    #[test]
    fn bad_input_names_file_and_line() {
        let e = parse(b"ok line\nbad \xff byte\n", &CorpusOptions::default()).unwrap_err();
        assert!(matches!(e, DataError::Parse { line: 2, problem: ParseProblem::InvalidUtf8, .. }), "{e}");
        assert_eq!(e.to_string(), "corpus.txt:2: invalid UTF-8");
        let e = parse(b"a\nb\nc\0d", &CorpusOptions::default()).unwrap_err();
        assert!(matches!(e, DataError::Parse { line: 3, .. }), "{e}");
        let e = parse(b"a b\n", &CorpusOptions { min_count: 5, ..Default::default() }).unwrap_err();
        assert!(e.to_string().contains("corpus.txt") && e.to_string().contains("min_count"), "{e}");
        assert!(parse(b"", &CorpusOptions::default()).is_err());
        assert!(parse(b"a", &CorpusOptions { min_count: 0, ..Default::default() }).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// Any bytes: an error or a corpus whose sequences use only vocabulary indices, whose
        /// counts add up with the dropped tokens, and whose vocabulary is sorted by count.
        #[test]
        fn any_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300), min_count in 1u64..3,
                                 max_vocab in prop::option::of(1usize..5), delim in prop::option::of(prop::sample::select(vec![',', ';', ' ']))) {
            let opts = CorpusOptions { delimiter: delim, min_count, max_vocab };
            if let Ok(c) = parse(&bytes, &opts) {
                let v = c.tokens.len() as u32;
                prop_assert!(c.sequences.iter().flatten().all(|&t| t < v));
                prop_assert!(c.counts.windows(2).all(|w| w[0] >= w[1]));
                prop_assert!(c.counts.iter().all(|&n| n >= min_count));
                let used: u64 = c.sequences.iter().map(|s| s.len() as u64).sum();
                prop_assert_eq!(used, c.counts.iter().sum::<u64>());
                prop_assert!(max_vocab.is_none_or(|m| c.tokens.len() <= m));
                prop_assert!(c.tokens.iter().all(|t| !t.is_empty()));
            }
        }

        /// Text of words: the sequences give back the lines' tokens.
        #[test]
        fn words_round_trip(lines in prop::collection::vec(prop::collection::vec("[a-zé]{1,4}", 0..6), 1..8)) {
            let text: String = lines.iter().map(|l| l.join(" ") + "\n").collect();
            let c = parse(text.as_bytes(), &CorpusOptions::default()).unwrap_or_default();
            if lines.iter().any(|l| !l.is_empty()) {
                prop_assert_eq!(c.sequences.len(), lines.len());
                for (seq, line) in c.sequences.iter().zip(&lines) {
                    let back: Vec<&str> = seq.iter().map(|&t| c.tokens[t as usize].as_str()).collect();
                    prop_assert_eq!(back, line.iter().map(String::as_str).collect::<Vec<_>>());
                }
            }
        }
    }
}
