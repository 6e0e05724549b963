"""`cnnlab data info|fetch`: output on real data, one clear error line on missing data."""

from cnnlab.cli import main


def test_data_info_fashion_mnist(capsys):
    assert main(["data", "info", "fashion-mnist"]) == 0
    out = capsys.readouterr().out
    assert "fashion-mnist-train: 60000" in out and "fashion-mnist-test: 10000" in out
    assert "Ankle boot" in out and "0.2860" in out and "1 x 28 x 28" in out


def test_data_fetch_verifies_installed_files(capsys):
    assert main(["data", "fetch", "fashion-mnist"]) == 0
    out = capsys.readouterr().out
    assert out.count("content sha256 ok") + out.count("md5 ok") == 4


def test_data_missing_is_one_line(tmp_path, capsys):
    assert main(["data", "info", "mnist", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(tmp_path) in err and err.startswith("cnnlab data: error: mnist")
