"""``tools/analysis/benchmark_backbone.py --device cuda``
(:mod:`mmconvnext.analysis.cuda_benchmark`).

Its cases, the own-path decisions and the report run on the CPU here (the same code, host-clock
timing, no memory figure); the tool itself on a GPU is marked ``cuda``.
"""
import json

import pytest
import torch
from tiny_runs import load_tool

from mmconvnext.analysis import cuda_benchmark
from mmconvnext.analysis.cuda_benchmark import Case
from mmconvnext.models.backbones.convnext_ops import OWN_PATH_DEVICES

benchmark_backbone = load_tool('analysis/benchmark_backbone.py')
SETTING = [(1, (64, 64))]


def test_cases_cover_peers_settings_precisions_and_compiled_peers():
    cases = cuda_benchmark.benchmark_cases(['mmconvnext', 'timm'], [(64, (224, 224)), *SETTING],
                                           ['fp32', 'bf16'], ['mmconvnext'], ['bf16'])
    assert len(cases) == 2 * 2 * 2 + 2
    assert [case.name for case in cases if case.compiled] == ['mmconvnext (compiled)'] * 2
    own = cuda_benchmark.own_path_cases(SETTING)
    assert [case.name for case in own] == ['mmconvnext (plain ops)'] + [
        f'mmconvnext (own {op})' for op in OWN_PATH_DEVICES]


def test_own_path_cases_measure_and_decide_on_the_cpu(single_thread):
    rows = [cuda_benchmark.run_case(case, 'atto', gemm_tflops=1., warmup=1, repeats=2,
                                    device='cpu')
            for case in cuda_benchmark.own_path_cases(SETTING)]
    assert not [row['error'] for row in rows if 'error' in row]
    assert all(row['train_images_per_s'] > 0 and row['train_peak_mib'] is None for row in rows)
    decisions = cuda_benchmark.own_path_decisions(rows)
    assert [item['op'] for item in decisions] == list(OWN_PATH_DEVICES)
    for item in decisions:
        assert item['own_over_plain'] == pytest.approx(item['own'] / item['plain'])
        assert item['use_on_cuda'] == (item['own_over_plain'] > 1.02)
    report = cuda_benchmark.format_tables('cpu', 1., rows, decisions)
    assert '| mmconvnext (own norm_mlp) | 1 x 64 x 64 | fp32 |' in report
    assert 'OWN_PATH_DEVICES may list cuda for:' in report


def test_bf16_autocast_case_and_a_failing_case(single_thread):
    row = cuda_benchmark.run_case(Case('mmconvnext', 1, (64, 64), 'bf16'), 'atto', 1., 1, 2,
                                  device='cpu')
    assert row['infer_images_per_s'] > 0 and row['infer_fraction_of_bf16_gemm'] > 0
    failed = cuda_benchmark.run_case(Case('mmconvnext', 1, (2, 2), 'fp32'), 'atto', 1., 1, 2,
                                     device='cpu')  # smaller than the 4x4 stem: an error row
    assert failed['error'].startswith('RuntimeError: ')
    assert '| mmconvnext | 1 x 2 x 2 | fp32 | failed: RuntimeError' in cuda_benchmark.format_tables(
        'cpu', 1., [failed], [])


@pytest.mark.parametrize('args,message', [
    (['--settings', '2x3'], "'2x3' is not BATCHxHxW"),
    (['--settings', '0x64x64'], 'batch and sizes must be >= 1'),
    (['--repeats', '0'], '--repeats must be >= 1'),
])
def test_bad_arguments_are_refused(monkeypatch, capsys, args, message):
    monkeypatch.setattr('sys.argv', ['benchmark_backbone.py', '--device', 'cuda', *args])
    with pytest.raises(SystemExit):
        benchmark_backbone.main()
    assert message in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason='refused only without a GPU')
def test_device_cuda_without_gpu_is_refused(monkeypatch, capsys):
    monkeypatch.setattr('sys.argv', ['benchmark_backbone.py', '--device', 'cuda'])
    with pytest.raises(SystemExit):
        benchmark_backbone.main()
    assert '--device cuda: torch' in capsys.readouterr().err


@pytest.mark.cuda
def test_cuda_run_prints_the_tables_and_writes_json(monkeypatch, capsys, tmp_path):
    out = tmp_path / 'bench.json'
    monkeypatch.setattr('sys.argv', [
        'benchmark_backbone.py', '--device', 'cuda', '--arch', 'atto', '--settings', '4x64x64',
        '--precisions', 'fp32', 'bf16', '--compile-peers', '--warmup', '1', '--repeats', '2',
        '--json', str(out)])
    benchmark_backbone.main()
    report = json.loads(out.read_text())
    assert report['bf16_gemm_tflops'] > 1
    assert not [row['error'] for row in report['cases'] if 'error' in row]
    assert all(row['train_peak_mib'] > 0 for row in report['cases'])
    assert len(report['own_path_decisions']) == len(OWN_PATH_DEVICES)
    assert 'OWN_PATH_DEVICES may list cuda for:' in capsys.readouterr().out
