//! Exports of item embeddings: Parquet (seed 000's `word2vec_20.parquet` schema: `movieId`
//! Int64, `title` Utf8, then one Float32 column per dimension `column_0 .. column_{k-1}`; Snappy;
//! user vectors the same with `userId` and no title), CSV (`movieId` then one column per
//! dimension), NumPy `.npy` (format version 1.0, little-endian f32, C order) and the word2vec
//! text format (first line `count dim`, then `movieId v1 v2 ...` per movie; loadable by gensim's
//! `KeyedVectors.load_word2vec_format(path, binary=False)`), with a `movieId<TAB>title` side
//! file for the titles. Every file is written through [`reelvec_outfile::write_file`] (atomic,
//! `O_EXCL` temporary, no symlink or device replaced); [`check_outputs`] checks them before work.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ndarray::ArrayView2;

use crate::ModelError;
use reelvec_outfile::write_file;

/// An export format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// `movieId,d0,d1,...` with a header row.
    Csv,
    /// NumPy `.npy`, shape `(n_movies, k)`, `<f4`; row order = the run's dense movie order.
    Npy,
    /// word2vec text format keyed by movie id.
    Word2vec,
    /// Apache Parquet (arrow-rs, Snappy): `movieId`, `title`, `column_0 .. column_{k-1}`.
    Parquet,
}

impl FromStr for ExportFormat {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "csv" => Ok(Self::Csv),
            "npy" => Ok(Self::Npy),
            "word2vec" | "w2v" => Ok(Self::Word2vec),
            "parquet" | "pq" => Ok(Self::Parquet),
            _ => Err(ModelError::InvalidConfig(format!(
                "unknown export format `{s}` (expected parquet, csv, npy or word2vec)"
            ))),
        }
    }
}

/// Shortest text that parses back to the same f32.
fn push_f32(out: &mut String, x: f32) {
    let _ = write!(out, "{x}");
}

fn check_rows(ids: &[u64], emb: ArrayView2<'_, f32>) -> Result<(), ModelError> {
    if ids.len() != emb.nrows() {
        return Err(ModelError::InvalidData(format!(
            "{} movie ids for {} embedding rows",
            ids.len(),
            emb.nrows()
        )));
    }
    Ok(())
}

/// CSV text: header `movieId,d0,...,d{k-1}`, one row per movie.
pub fn csv_string(ids: &[u64], emb: ArrayView2<'_, f32>) -> Result<String, ModelError> {
    check_rows(ids, emb)?;
    let mut s = String::from("movieId");
    for d in 0..emb.ncols() {
        let _ = write!(s, ",d{d}");
    }
    s.push('\n');
    for (id, row) in ids.iter().zip(emb.rows()) {
        let _ = write!(s, "{id}");
        for &x in row {
            s.push(',');
            push_f32(&mut s, x);
        }
        s.push('\n');
    }
    Ok(s)
}

/// `.npy` bytes (format 1.0): magic, version, header length, a Python-dict header padded with
/// spaces and a final newline so that the data starts at a multiple of 64 bytes, then the
/// little-endian f32 values in C order.
pub fn npy_bytes(emb: ArrayView2<'_, f32>) -> Vec<u8> {
    let dict =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}", emb.nrows(), emb.ncols());
    // 6 magic + 2 version + 2 length bytes precede the header.
    let unpadded = 10 + dict.len() + 1;
    let total = unpadded.div_ceil(64) * 64;
    let mut header = dict;
    header.push_str(&" ".repeat(total - unpadded));
    header.push('\n');
    let mut out = Vec::with_capacity(total + emb.len() * 4);
    out.extend_from_slice(b"\x93NUMPY");
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for row in emb.rows() {
        for &x in row {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
    out
}

/// word2vec text: `count dim`, then `movieId v1 ... vk` per line.
pub fn word2vec_string(ids: &[u64], emb: ArrayView2<'_, f32>) -> Result<String, ModelError> {
    check_rows(ids, emb)?;
    let mut s = format!("{} {}\n", emb.nrows(), emb.ncols());
    for (id, row) in ids.iter().zip(emb.rows()) {
        let _ = write!(s, "{id}");
        for &x in row {
            s.push(' ');
            push_f32(&mut s, x);
        }
        s.push('\n');
    }
    Ok(s)
}

/// word2vec text keyed by token (a `--sequences` run): `count dim`, then `token v1 ... vk` per
/// line, what gensim's `KeyedVectors.load_word2vec_format(path, binary=False)` reads. gensim
/// splits a line at single spaces, so a token holding whitespace cannot be a key: an error
/// naming it (Parquet and CSV keep such tokens).
pub fn word2vec_tokens_string(tokens: &[String], emb: ArrayView2<'_, f32>) -> Result<String, ModelError> {
    if tokens.len() != emb.nrows() {
        return Err(ModelError::InvalidData(format!("{} tokens for {} rows", tokens.len(), emb.nrows())));
    }
    let mut s = format!("{} {}\n", emb.nrows(), emb.ncols());
    for (token, row) in tokens.iter().zip(emb.rows()) {
        if token.is_empty() || token.chars().any(char::is_whitespace) {
            return Err(ModelError::InvalidData(format!(
                "token `{}` is empty or holds whitespace: word2vec text cannot key it (export parquet or csv)",
                token.escape_debug()
            )));
        }
        s.push_str(token);
        for &x in row {
            s.push(' ');
            push_f32(&mut s, x);
        }
        s.push('\n');
    }
    Ok(s)
}

/// The titles side file of a word2vec export: `FILE.titles.tsv`.
pub fn titles_path(out: &Path) -> PathBuf {
    let mut name = out.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".titles.tsv");
    out.with_file_name(name)
}

/// Parquet bytes of a vector table: `id_column` (Int64), `title` (Utf8, when `titles` is
/// given; one per row), then `column_0 .. column_{k-1}` (Float32), one row group, Snappy.
pub fn parquet_bytes(
    id_column: &str,
    ids: &[u64],
    titles: Option<&[String]>,
    emb: ArrayView2<'_, f32>,
) -> Result<Vec<u8>, ModelError> {
    use arrow_array::{ArrayRef, Float32Array, Int64Array, RecordBatch, StringArray};
    use arrow_schema::{DataType, Field, Schema};
    use parquet::arrow::ArrowWriter;
    use parquet::basic::Compression;
    use parquet::file::properties::WriterProperties;
    use std::sync::Arc;

    check_rows(ids, emb)?;
    let ids: Vec<i64> = ids
        .iter()
        .map(|&id| {
            i64::try_from(id)
                .map_err(|_| ModelError::InvalidData(format!("id {id} does not fit Parquet's Int64")))
        })
        .collect::<Result<_, _>>()?;
    let mut fields = vec![Field::new(id_column, DataType::Int64, false)];
    let mut columns: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(ids))];
    if let Some(titles) = titles {
        if titles.len() != emb.nrows() {
            return Err(ModelError::InvalidData(format!("{} titles for {} rows", titles.len(), emb.nrows())));
        }
        fields.push(Field::new("title", DataType::Utf8, false));
        columns.push(Arc::new(StringArray::from_iter_values(titles.iter())));
    }
    for (j, col) in emb.columns().into_iter().enumerate() {
        fields.push(Field::new(format!("column_{j}"), DataType::Float32, false));
        columns.push(Arc::new(Float32Array::from_iter_values(col.iter().copied())));
    }
    let parquet_err = |e: &dyn std::fmt::Display| ModelError::InvalidData(format!("writing Parquet: {e}"));
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(|e| parquet_err(&e))?;
    let props = WriterProperties::builder().set_compression(Compression::SNAPPY).build();
    let mut buf = Vec::new();
    let mut writer =
        ArrowWriter::try_new(&mut buf, batch.schema(), Some(props)).map_err(|e| parquet_err(&e))?;
    writer.write(&batch).map_err(|e| parquet_err(&e))?;
    writer.close().map_err(|e| parquet_err(&e))?;
    Ok(buf)
}

/// The files an export to `out` writes (the word2vec export adds the titles file).
pub fn output_files(format: ExportFormat, out: &Path) -> Vec<PathBuf> {
    match format {
        ExportFormat::Word2vec => vec![out.to_path_buf(), titles_path(out)],
        ExportFormat::Csv | ExportFormat::Npy | ExportFormat::Parquet => vec![out.to_path_buf()],
    }
}

/// Checks, before any work, that every file of an export to `out` can be written
/// ([`reelvec_outfile::check_file`]: absent or a regular file, never a symlink or a device).
pub fn check_outputs(format: ExportFormat, out: &Path) -> Result<(), ModelError> {
    for f in output_files(format, out) {
        reelvec_outfile::check_file(&f)?;
    }
    Ok(())
}

/// Writes user vectors (the MF models' `user_factors`) as Parquet: `userId` (Int64), then
/// `column_0 .. column_{k-1}` (Float32), Snappy; checked like every output first.
pub fn export_user_vectors(
    out: &Path,
    user_ids: &[u64],
    emb: ArrayView2<'_, f32>,
) -> Result<PathBuf, ModelError> {
    reelvec_outfile::check_file(out)?;
    write_file(out, &parquet_bytes("userId", user_ids, None, emb)?)?;
    Ok(out.to_path_buf())
}

/// Writes the export of a run's item vectors `emb`: [`export`] with the run's ids and titles,
/// except that a `--sequences` run ([`RunInfo::tokens`](crate::RunInfo)) exports word2vec text
/// keyed by its token strings with no side file (its Parquet `title` column holds the tokens,
/// and its CSV a `token` column after `movieId`). Returns the files written.
pub fn export_run(
    format: ExportFormat,
    out: &Path,
    info: &crate::RunInfo,
    emb: ArrayView2<'_, f32>,
) -> Result<Vec<PathBuf>, ModelError> {
    if !info.tokens {
        return export(format, out, &info.movie_raw_ids, &info.movie_titles, emb);
    }
    match format {
        ExportFormat::Word2vec => {
            write_file(out, word2vec_tokens_string(&info.movie_titles, emb)?.as_bytes())?
        }
        ExportFormat::Csv => {
            write_file(out, csv_tokens_string(&info.movie_raw_ids, &info.movie_titles, emb)?.as_bytes())?
        }
        _ => return export(format, out, &info.movie_raw_ids, &info.movie_titles, emb),
    }
    Ok(vec![out.to_path_buf()])
}

/// CSV of a `--sequences` run: `movieId,token,column_0..`, the token quoted as RFC 4180 asks
/// (in double quotes, inner quotes doubled) when it holds a comma, quote or line break.
fn csv_tokens_string(ids: &[u64], tokens: &[String], emb: ArrayView2<'_, f32>) -> Result<String, ModelError> {
    check_rows(ids, emb)?;
    if tokens.len() != ids.len() {
        return Err(ModelError::InvalidData(format!("{} tokens for {} rows", tokens.len(), ids.len())));
    }
    let mut s = String::from("movieId,token");
    for j in 0..emb.ncols() {
        let _ = write!(s, ",column_{j}");
    }
    s.push('\n');
    for ((id, token), row) in ids.iter().zip(tokens).zip(emb.rows()) {
        let _ = write!(s, "{id},");
        if token.contains([',', '"', '\n', '\r']) {
            let _ = write!(s, "\"{}\"", token.replace('"', "\"\""));
        } else {
            s.push_str(token);
        }
        for &x in row {
            s.push(',');
            push_f32(&mut s, x);
        }
        s.push('\n');
    }
    Ok(s)
}

/// Writes an export; returns the files written (the word2vec export adds the titles file).
pub fn export(
    format: ExportFormat,
    out: &Path,
    ids: &[u64],
    titles: &[String],
    emb: ArrayView2<'_, f32>,
) -> Result<Vec<PathBuf>, ModelError> {
    match format {
        ExportFormat::Csv => write_file(out, csv_string(ids, emb)?.as_bytes())?,
        ExportFormat::Npy => write_file(out, &npy_bytes(emb))?,
        ExportFormat::Parquet => write_file(out, &parquet_bytes("movieId", ids, Some(titles), emb)?)?,
        ExportFormat::Word2vec => {
            write_file(out, word2vec_string(ids, emb)?.as_bytes())?;
            let mut t = String::from("movieId\ttitle\n");
            for (i, id) in ids.iter().enumerate() {
                let title = titles.get(i).map(|s| s.replace(['\t', '\n'], " ")).unwrap_or_default();
                let _ = writeln!(t, "{id}\t{title}");
            }
            write_file(&titles_path(out), t.as_bytes())?;
        }
    }
    Ok(output_files(format, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn csv_by_hand() {
        let e = array![[1.0f32, -0.5], [0.25, 3.0]];
        let s = csv_string(&[10, 7], e.view()).unwrap();
        assert_eq!(s, "movieId,d0,d1\n10,1,-0.5\n7,0.25,3\n");
        assert!(csv_string(&[1], e.view()).is_err());
    }

    #[test]
    fn npy_header_is_aligned_and_data_follows() {
        let e = array![[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0]];
        let b = npy_bytes(e.view());
        assert_eq!(&b[..8], b"\x93NUMPY\x01\x00");
        let hlen = u16::from_le_bytes([b[8], b[9]]) as usize;
        assert_eq!((10 + hlen) % 64, 0);
        let header = std::str::from_utf8(&b[10..10 + hlen]).unwrap();
        assert!(header.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"));
        assert!(header.ends_with('\n'));
        let data: Vec<f32> =
            b[10 + hlen..].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        assert_eq!(data, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    }

    #[test]
    fn parquet_round_trip_has_the_seed_schema() {
        use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("emb.parquet");
        let e = array![[0.5f32, -1.0], [2.0, 0.25], [3.0, 4.0]];
        let titles = vec!["A (1999)".to_string(), "B".into(), "C, The (2001)".into()];
        export(ExportFormat::Parquet, &out, &[3, 9, 12], &titles, e.view()).unwrap();
        let file = std::fs::File::open(&out).unwrap();
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
        let meta = builder.metadata().clone();
        let names: Vec<String> = builder.schema().fields().iter().map(|f| f.name().clone()).collect();
        assert_eq!(names, ["movieId", "title", "column_0", "column_1"]);
        let batches: Vec<_> = builder.build().unwrap().map(|b| b.unwrap()).collect();
        let b = &batches[0];
        let ids = b.column(0).as_any().downcast_ref::<arrow_array::Int64Array>().unwrap();
        assert_eq!(ids.values(), &[3, 9, 12]);
        let t = b.column(1).as_any().downcast_ref::<arrow_array::StringArray>().unwrap();
        assert_eq!(t.value(2), "C, The (2001)");
        let c1 = b.column(3).as_any().downcast_ref::<arrow_array::Float32Array>().unwrap();
        assert_eq!(c1.values(), &[-1.0, 0.25, 4.0]);
        let codec = meta.row_group(0).column(2).compression();
        assert_eq!(codec, parquet::basic::Compression::SNAPPY);
        // A user table: no title column.
        let users = dir.path().join("users.parquet");
        std::fs::write(&users, parquet_bytes("userId", &[1, 2, 3], None, e.view()).unwrap()).unwrap();
        let r = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&users).unwrap()).unwrap();
        assert_eq!(r.schema().field(0).name(), "userId");
        assert_eq!(r.schema().fields().len(), 3);
        assert!(parquet_bytes("movieId", &[1], None, e.view()).is_err());
    }

    #[test]
    fn word2vec_and_csv_keyed_by_token() {
        let dir = tempfile::tempdir().unwrap();
        let e = array![[0.5f32, -1.0], [2.0, 0.25], [0.0, 1.5]];
        let mut info = crate::RunInfo::new(crate::ModelKind::Skipgram, serde_json::Value::Null, 1);
        info.movie_raw_ids = vec![1, 2, 3];
        info.movie_titles = vec!["the".into(), "ünïcode".into(), "a,\"b".into()];
        info.tokens = true;
        let out = dir.path().join("w.txt");
        let files =
            export_run(ExportFormat::Word2vec, &out, &info, e.slice(ndarray::s![..2, ..])).unwrap_err();
        assert!(files.to_string().contains("2 tokens") || files.to_string().contains("tokens for"));
        info.movie_titles.truncate(2);
        info.movie_raw_ids.truncate(2);
        let e2 = e.slice(ndarray::s![..2, ..]);
        let files = export_run(ExportFormat::Word2vec, &out, &info, e2).unwrap();
        assert_eq!(files, vec![out.clone()]);
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "2 2\nthe 0.5 -1\nünïcode 2 0.25\n");
        assert!(!titles_path(&out).exists());
        // A token with a space cannot key word2vec text; nothing is written.
        info.movie_titles[0] = "new york".into();
        let bad = dir.path().join("bad.txt");
        let err = export_run(ExportFormat::Word2vec, &bad, &info, e2).unwrap_err().to_string();
        assert!(err.contains("new york") && err.contains("whitespace"), "{err}");
        assert!(!bad.exists());
        // CSV carries the token, quoted where RFC 4180 asks.
        info.movie_titles = vec!["a,\"b".into(), "c".into()];
        let csv = dir.path().join("e.csv");
        export_run(ExportFormat::Csv, &csv, &info, e2).unwrap();
        assert_eq!(
            std::fs::read_to_string(&csv).unwrap(),
            "movieId,token,column_0,column_1\n1,\"a,\"\"b\",0.5,-1\n2,c,2,0.25\n"
        );
    }

    #[test]
    fn word2vec_and_titles() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("emb.txt");
        let e = array![[0.5f32], [-1.0]];
        let files =
            export(ExportFormat::Word2vec, &out, &[3, 9], &["A\tB (1999)".into(), "C".into()], e.view())
                .unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "2 1\n3 0.5\n9 -1\n");
        assert_eq!(std::fs::read_to_string(&files[1]).unwrap(), "movieId\ttitle\n3\tA B (1999)\n9\tC\n");
        assert!(files[1].to_string_lossy().ends_with("emb.txt.titles.tsv"));
        assert_eq!("W2V".parse::<ExportFormat>().unwrap(), ExportFormat::Word2vec);
        assert!("feather".parse::<ExportFormat>().is_err());
    }
}
