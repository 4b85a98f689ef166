"""Typed jobs: the document's TextJob and a DiffusionJob round-trip exactly through the
document's job file shape; nested variants are tagged, never sniffed.

On each backend (``make_queue``); the tests that edit job files by hand are files-only."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

import jobledger
from jobledger import JobQueue, JobStatus, Worker

DOC_JOB_ID = "123e4567-e89b-12d3-a456-426614174000"


@dataclass
class CustomDatasetType:
    system_prompt: str | None = None
    system_format: str | None = None
    field_system: str | None = None
    field_instruction: str | None = None
    field_input: str | None = None
    field_output: str | None = None
    format: str | None = None
    no_input_format: str | None = None
    field: str | None = None


@jobledger.job_type("TextJob")
@dataclass
class TextJob:
    job_id: str
    model: str
    expected_repo_name: str
    dataset: str
    dataset_type: CustomDatasetType
    file_format: str = "json"


@jobledger.job_type("DiffusionJob")
@dataclass
class DiffusionJob:
    job_id: str
    model: str
    dataset_zip: str
    model_type: str
    expected_repo_name: str | None = None


def _doc_text_job() -> TextJob:
    return TextJob(
        job_id=DOC_JOB_ID,
        model="mistralai/Mistral-7B-v0.1",
        expected_repo_name="my-fine-tuned-model",
        dataset="my-dataset.json",
        dataset_type=CustomDatasetType(
            system_prompt="You are a helpful assistant.",
            system_format="{system}",
            field_system="system",
            field_instruction="instruction",
            field_input="input",
            field_output="output",
            format="{system}\n\n{instruction}\n\n{input}",
            no_input_format="{system}\n\n{instruction}",
            field=None,
        ),
        file_format="json",
    )


#: The document's job file example, as it is once the job is Running.
DOC_EXAMPLE = {
    "type": "TextJob",
    "job_id": DOC_JOB_ID,
    "model": "mistralai/Mistral-7B-v0.1",
    "status": "Running",
    "error_message": None,
    "expected_repo_name": "my-fine-tuned-model",
    "dataset": "my-dataset.json",
    "dataset_type": {
        "system_prompt": "You are a helpful assistant.",
        "system_format": "{system}",
        "field_system": "system",
        "field_instruction": "instruction",
        "field_input": "input",
        "field_output": "output",
        "format": "{system}\n\n{instruction}\n\n{input}",
        "no_input_format": "{system}\n\n{instruction}",
        "field": None,
    },
    "file_format": "json",
}


def test_the_documents_text_job_has_the_documents_file_shape_and_round_trips(make_queue):
    q = make_queue()
    job = _doc_text_job()
    assert q.enqueue(job) == DOC_JOB_ID  # the payload's own job_id is the id
    claimed = q.claim()
    assert claimed.job_id == DOC_JOB_ID and claimed.known_type is True
    assert claimed.payload == job
    assert type(claimed.payload.dataset_type) is CustomDatasetType
    doc = make_queue.document(q, DOC_JOB_ID)  # on files: the job file, read from disk
    meta = doc.pop("_jobledger")
    assert doc == DOC_EXAMPLE
    assert meta["attempts"] == 1
    if make_queue.backend == "files":  # the folder's index, on disk
        assert json.loads((make_queue.location / "queue.json").read_text())["running"] == [
            DOC_JOB_ID
        ]
    q.close()


# Files only: the job file is written by hand into the folder.
def test_the_documents_job_file_written_by_hand_is_served_as_a_text_job(tmp_path):
    qdir = tmp_path / "q"
    (qdir / "jobs").mkdir(parents=True)
    queued = dict(DOC_EXAMPLE, status="Queued")  # no _jobledger block at all
    (qdir / "jobs" / f"{DOC_JOB_ID}.json").write_text(json.dumps(queued))
    with JobQueue(qdir, durability="flush") as q:
        job = q.claim()
        assert job is not None and job.payload == _doc_text_job()


def test_a_diffusion_job_round_trips_through_a_worker(make_queue):
    q = make_queue()
    job = DiffusionJob(
        job_id="diff-1", model="stabilityai/sdxl", dataset_zip="s3://b/d.zip", model_type="sdxl"
    )
    q.enqueue(job, priority=5)
    got = []

    def handle(j: jobledger.Job) -> dict:
        got.append(j.payload)
        return {"repo": f"{j.payload.model}-tuned"}

    Worker(q, {"DiffusionJob": handle}, handle_signals=False).run(until_empty=True)
    assert got == [job]
    done = q.get("diff-1")
    assert done.status is JobStatus.COMPLETED
    assert done.result == {"repo": "stabilityai/sdxl-tuned"}
    doc = make_queue.document(q, "diff-1")
    assert doc["type"] == "DiffusionJob" and doc["status"] == "Completed"
    assert doc["dataset_zip"] == "s3://b/d.zip" and doc["model_type"] == "sdxl"
    assert doc["_jobledger"]["priority"] == 5
    q.close()


# Variants: two classes with the same fields, which no sniffing could tell apart.


@dataclass
class InstructFormat:
    field_instruction: str
    field_output: str


@dataclass
class DpoFormat:
    field_instruction: str
    field_output: str


@jobledger.job_type("VariantTestJob")
@dataclass
class VariantJob:
    fmt: InstructFormat | DpoFormat
    extra: list[InstructFormat | DpoFormat] = field(default_factory=list)
    maybe: DpoFormat | None = None


def test_nested_variants_are_tagged_and_read_back_by_their_tag(make_queue):
    q = make_queue()
    job = VariantJob(
        fmt=DpoFormat("prompt", "chosen"),
        extra=[InstructFormat("i", "o"), DpoFormat("p", "c")],
        maybe=DpoFormat("a", "b"),
    )
    job_id = q.enqueue(job)
    doc = make_queue.document(q, job_id)
    assert doc["fmt"] == {
        "_variant": "DpoFormat",
        "field_instruction": "prompt",
        "field_output": "chosen",
    }
    assert [e["_variant"] for e in doc["extra"]] == ["InstructFormat", "DpoFormat"]
    assert "_variant" not in doc["maybe"]  # only one class possible: nothing to tag
    claimed = q.claim()
    assert claimed.payload == job
    assert type(claimed.payload.fmt) is DpoFormat
    assert [type(e) for e in claimed.payload.extra] == [InstructFormat, DpoFormat]
    q.close()


# Files only: the tag is deleted from the job file on disk.
def test_an_untagged_variant_is_not_guessed_the_job_is_handed_out_raw(tmp_path):
    qdir = tmp_path / "q"
    q = JobQueue(qdir, durability="flush")
    job_id = q.enqueue(VariantJob(fmt=InstructFormat("i", "o")))
    path = qdir / "jobs" / f"{job_id}.json"
    doc = json.loads(path.read_text())
    del doc["fmt"]["_variant"]
    path.write_text(json.dumps(doc))
    claimed = q.claim()
    assert claimed.job_id == job_id
    assert claimed.known_type is False
    assert claimed.payload == {
        "fmt": {"field_instruction": "i", "field_output": "o"},
        "extra": [],
        "maybe": None,
    }
    q.close()


def test_a_payload_field_named_like_a_reserved_key_is_refused(make_queue):
    q = make_queue()
    with pytest.raises(TypeError, match="reserved"):
        q.enqueue({"type": "T", "status": "mine"})
    with pytest.raises(TypeError, match="reserved"):
        q.enqueue({"type": "T", "_jobledger": {}})
    if make_queue.backend == "files":  # nothing written into the folder
        jobs = make_queue.location / "jobs"
        assert not jobs.exists() or not list(jobs.iterdir())
    q.enqueue({"type": "T"}, job_id="fine")
    assert [j.job_id for j in q.list()] == ["fine"]  # the refused ones were never stored
    q.close()


def test_an_unregistered_object_is_refused(make_queue):
    @dataclass
    class NotRegistered:
        x: int

    q = make_queue()
    with pytest.raises(TypeError, match="job_type"):
        q.enqueue(NotRegistered(1))
    q.close()


def test_a_pydantic_job_round_trips(make_queue):
    pydantic = pytest.importorskip("pydantic")

    class PydDataset(pydantic.BaseModel):
        field_instruction: str
        field_output: str | None = None

    @jobledger.job_type("PydanticTextJob")
    class PydTextJob(pydantic.BaseModel):
        model: str
        dataset: str
        dataset_type: PydDataset

    q = make_queue()
    job = PydTextJob(
        model="m", dataset="d.json", dataset_type=PydDataset(field_instruction="instruction")
    )
    q.enqueue(job, job_id="p1")
    claimed = q.claim()
    assert claimed.payload == job and type(claimed.payload) is PydTextJob
    q.close()


def test_what_a_test_registers_is_forgotten_after_it():
    # The registry is process-global; tests/conftest.py's autouse fixture wraps every test
    # in isolated_for_tests(), so a type registered in one test is unknown to the next.
    from jobledger import _job_types

    before = _job_types.registered_types()
    assert before["TextJob"] is TextJob  # module-level registrations stay
    with _job_types.isolated_for_tests():

        @jobledger.job_type("OnlyInside")
        @dataclass
        class OnlyInside:
            x: int

        assert _job_types.registered_types()["OnlyInside"] is OnlyInside
        assert _job_types.encode_job(OnlyInside(1)) == ("OnlyInside", {"x": 1})
    assert _job_types.registered_types() == before
    with pytest.raises(TypeError, match="job_type"):
        _job_types.encode_job(OnlyInside(1))
