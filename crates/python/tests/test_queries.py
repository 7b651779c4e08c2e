"""Queries and exports of a Run: similar, recommend, fold_in, Parquet/npy/csv/word2vec exports
read back with pyarrow and pandas, and the errors of unknown movies and unsupported kinds."""

import subprocess

import numpy as np
import pytest

import reelvec
from reelvec.errors import ConfigError, UnknownMovieError, UnsupportedError


@pytest.fixture(scope="module")
def mf(tiny):
    return reelvec.train("mf", tiny, config={"train.epochs": 3, "k": 8}, seed=2)


@pytest.fixture(scope="module")
def cbow(tiny):
    return reelvec.train("cbow", tiny, config={"train.epochs": 2, "model.dim": 8, "min_user_ratings": 5})


def test_similar_by_id_and_by_title(mf):
    first_id, first_title = int(mf.movie_ids[0]), mf.titles[0]
    by_id = mf.similar(first_id, k=5)
    assert len(by_id) == 5 and all(isinstance(m, int) and isinstance(t, str) for m, t, _ in by_id)
    assert first_id not in [m for m, _, _ in by_id]
    scores = [s for _, _, s in by_id]
    assert scores == sorted(scores, reverse=True) and all(-1.0 <= s <= 1.0 for s in scores)
    assert mf.similar(first_title, k=5) == by_id
    assert len(mf.similar(first_id, k=10_000)) == len(mf.movie_ids) - 1


def test_unknown_and_ambiguous_titles_are_key_errors(mf):
    with pytest.raises(KeyError) as e:
        mf.similar("No Such Movie Title", k=3)
    assert isinstance(e.value, UnknownMovieError) and "no movie matches" in str(e.value)
    with pytest.raises(UnknownMovieError, match="matches"):
        mf.similar("(", k=3)
    with pytest.raises(ConfigError):
        mf.similar(int(mf.movie_ids[0]), k=0)


def test_recommend_excludes_what_the_user_rated(mf, tiny):
    arrays = tiny.to_arrays()
    user = int(arrays["userId"][0])
    rated = set(arrays["movieId"][arrays["userId"] == user].tolist())
    recs = mf.recommend(user, k=10)
    assert len(recs) == 10
    stars = [s for _, _, s in recs]
    assert stars == sorted(stars, reverse=True)
    with_rated = mf.recommend(user, k=len(mf.movie_ids), exclude_rated=False)
    assert len(with_rated) == len(mf.movie_ids)
    # Only training rows are excluded, so at least some rated movies are gone.
    assert len(rated & {m for m, _, _ in recs}) < len(rated)
    with pytest.raises(UnknownMovieError, match="user 999999"):
        mf.recommend(999999)


def test_fold_in_for_rating_and_item_models(mf, cbow):
    a, b = int(mf.movie_ids[0]), mf.titles[1]
    recs = mf.fold_in({a: 5.0, b: 1.0}, k=5)
    assert len(recs) == 5 and a not in [m for m, _, _ in recs]
    watched = cbow.fold_in({int(cbow.movie_ids[0]): 5, int(cbow.movie_ids[1]): 5}, k=3)
    assert len(watched) == 3
    with pytest.raises(UnknownMovieError):
        mf.fold_in({"No Such Movie Title": 4.0})
    with pytest.raises(ValueError):
        mf.fold_in({a: float("nan")})
    with pytest.raises(ValueError):
        mf.fold_in({})


def test_middle_of_two_movies_for_item2vec_runs(cbow, mf, tmp_path, cli):
    a, b = int(cbow.movie_ids[0]), int(cbow.movie_ids[1])
    between = cbow.middle(a, b, k=4)
    assert len(between) == 4 and not {a, b} & {m for m, _, _ in between}
    scores = [s for _, _, s in between]
    assert scores == sorted(scores, reverse=True)
    assert cbow.middle(cbow.titles[0], cbow.titles[1], k=4) == between
    assert len(cbow.middle(a, b)) == min(10, len(cbow.movie_ids) - 2)
    with pytest.raises(ValueError, match="two different movies"):
        cbow.middle(a, a)
    with pytest.raises(UnknownMovieError):
        cbow.middle(a, "No Such Movie Title")
    with pytest.raises(UnsupportedError, match="middle"):
        mf.middle(a, b)
    # The CLI's `reelvec middle` lists the same movies for the saved run.
    cbow.save(tmp_path / "cbow")
    out = subprocess.run([cli, "middle", "--run", str(tmp_path / "cbow"), "-k", "4", str(a), str(b)],
                         check=True, capture_output=True, text=True)
    listed = [int(line.split(None, 3)[2]) for line in out.stdout.splitlines()[1:]]
    assert listed == [m for m, _, _ in between]


def test_recommend_is_unsupported_for_item_models(cbow):
    with pytest.raises(UnsupportedError) as e:
        cbow.recommend(1)
    assert isinstance(e.value, TypeError)


def test_parquet_export_has_the_notebook_schema(tmp_path, mf):
    pq = pytest.importorskip("pyarrow.parquet")
    pd = pytest.importorskip("pandas")
    out = tmp_path / "items.parquet"
    assert mf.export(out) == [str(out)]
    table = pq.read_table(out)
    k = mf.item_vectors.shape[1]
    assert table.column_names == ["movieId", "title"] + [f"column_{j}" for j in range(k)]
    assert str(table.schema.field("movieId").type) == "int64"
    assert str(table.schema.field("column_0").type) == "float"
    assert pq.ParquetFile(out).metadata.row_group(0).column(2).compression == "SNAPPY"
    df = pd.read_parquet(out)
    assert np.array_equal(df["movieId"].to_numpy(), mf.movie_ids)
    assert list(df["title"]) == mf.titles
    assert np.array_equal(df[[f"column_{j}" for j in range(k)]].to_numpy(), mf.item_vectors)

    users = tmp_path / "users.parquet"
    mf.export_users(users)
    u = pd.read_parquet(users)
    assert list(u.columns)[0] == "userId" and len(u.columns) == k + 1
    assert np.array_equal(u.drop(columns="userId").to_numpy(), mf.user_vectors)


def test_the_clis_user_export_is_pythons(tmp_path, mf, cli):
    pd = pytest.importorskip("pandas")
    mf.save(tmp_path / "run")
    ours, theirs = tmp_path / "py-users.parquet", tmp_path / "cli-users.parquet"
    mf.export_users(ours)
    subprocess.run([cli, "export", "--run", str(tmp_path / "run"), "--vectors", "users", "--format", "parquet",
                    "--out", str(theirs)], check=True, capture_output=True)
    a, b = pd.read_parquet(ours), pd.read_parquet(theirs)
    assert a.equals(b)
    assert np.array_equal(b["userId"].to_numpy(), mf.user_ids)
    assert np.array_equal(b.drop(columns="userId").to_numpy(), mf.user_vectors)


def test_other_export_formats(tmp_path, mf, cbow):
    npy = tmp_path / "v.npy"
    mf.export(npy, format="npy")
    assert np.array_equal(np.load(npy), mf.item_vectors)
    csv = tmp_path / "v.csv"
    mf.export(csv, format="csv")
    assert csv.read_text().startswith("movieId,d0,")
    files = mf.export(tmp_path / "v.w2v", format="word2vec")
    assert len(files) == 2
    with pytest.raises(ConfigError, match="unknown export format"):
        mf.export(tmp_path / "v.x", format="feather")
    with pytest.raises(UnsupportedError):
        cbow.export_users(tmp_path / "u.parquet")


def test_ratings_parquet_read_back_from_pandas(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    d = tmp_path / "ml"
    d.mkdir()
    df = pd.DataFrame({"userId": [1, 1, 2], "movieId": [10, 20, 10], "rating": [4.0, 3.5, 5.0],
                       "timestamp": [1, 2, 3]})
    df.to_parquet(d / "ratings.parquet")
    ds = reelvec.load(d, cache=False)
    assert ds.stats()["ratings"] == 3 and ds.stats()["layout"] == "ml-latest"
    back = ds.to_pandas()
    assert list(back["rating"]) == [4.0, 3.5, 5.0]
    df.loc[1, "rating"] = float("nan")
    df.to_parquet(d / "ratings.parquet")
    with pytest.raises(ValueError) as e:
        reelvec.load(d, cache=False)
    assert e.value.line == 3 and e.value.filename.endswith("ratings.parquet")
    # Any file through the generic layout, by column position.
    df.drop(index=1).to_parquet(tmp_path / "any.parquet")
    ds = reelvec.load(tmp_path / "any.parquet", layout="generic", columns=[0, 1, 2, 3], cache=False)
    assert ds.n_ratings == 2


def _written_by(writer, path):
    """Ratings under other column names, in another order, written to Parquet by `writer`."""
    cols = {"stars": [4.0, 3.5, 5.0, 2.0], "who": [7, 7, 8, 9], "what": [10, 20, 10, 30],
            "when": [100, 101, 102, 103]}
    if writer == "pyarrow":
        pa = pytest.importorskip("pyarrow")
        pq = pytest.importorskip("pyarrow.parquet")
        pq.write_table(pa.table(cols), path)
    elif writer == "pandas":
        pd = pytest.importorskip("pandas")
        pd.DataFrame(cols).to_parquet(path)
    else:
        pl = pytest.importorskip("polars")
        pl.DataFrame(cols).write_parquet(path)


@pytest.mark.parametrize("writer", ["pyarrow", "pandas", "polars"])
def test_any_parquet_file_by_column_name(tmp_path, writer):
    f = tmp_path / f"{writer}.parquet"
    _written_by(writer, f)
    ds = reelvec.load(f, layout="generic", columns=["who", "what", "stars", "when"], cache=False)
    a = ds.to_arrays()
    assert a["userId"].tolist() == [7, 7, 8, 9] and a["movieId"].tolist() == [10, 20, 10, 30]
    assert a["rating"].tolist() == [4.0, 3.5, 5.0, 2.0] and a["timestamp"].tolist() == [100, 101, 102, 103]
    # The same columns by position, and a delimited file with the same header, read alike.
    by_position = reelvec.load(f, layout="generic", columns=[1, 2, 0, 3], cache=False).to_arrays()
    assert all(np.array_equal(a[k], by_position[k]) for k in a)
    csv = tmp_path / "same.csv"
    csv.write_text("stars,who,what,when\n4.0,7,10,100\n3.5,7,20,101\n5.0,8,10,102\n2.0,9,30,103\n")
    from_csv = reelvec.load(csv, layout="generic", columns=["who", "what", "stars", "when"], cache=False)
    assert all(np.array_equal(a[k], from_csv.to_arrays()[k]) for k in a)
    # A name the file lacks: a DataFormatError at line 1 naming it and the header.
    with pytest.raises(reelvec.DataFormatError, match="userId") as e:
        reelvec.load(f, layout="generic", columns=["userId", "what", "stars"], cache=False)
    assert e.value.line == 1 and e.value.filename.endswith(f"{writer}.parquet")


def test_a_parquet_file_by_column_name_from_the_cli(tmp_path, cli):
    f = tmp_path / "any.parquet"
    _written_by("pandas", f)
    import json

    out = subprocess.run([cli, "data", "stats", "--data", str(f), "--layout", "generic", "--columns",
                          "who,what,stars,when", "--no-cache", "--json"], check=True, capture_output=True, text=True)
    stats = json.loads(out.stdout)
    assert stats["ratings"] == 4 and stats["users"] == 3
