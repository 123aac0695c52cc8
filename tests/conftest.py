"""Shared pytest fixtures (kept minimal: model builders live in tests/onnx_fixtures.py)."""
import pytest


@pytest.fixture(scope="session")
def onnx_model(tmp_path_factory):
    """`onnx_model(key) -> Path`: build (once per session) a model from tests/onnx_fixtures.py."""
    import onnx_fixtures as models

    directory = tmp_path_factory.mktemp("onnx_models")

    def get(key: str):
        return models.build(key, directory)

    return get


def pytest_addoption(parser):
    parser.addoption("--reverse", action="store_true",
                     help="run the tests in reverse order (every test must pass in any order)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--reverse"):
        items.reverse()
