"""Batch summarization: each request sends one long document with a "summarize" instruction.

    locust -f locustfiles/batch.py --headless -u 32 -t 60s --csv out/batch

Defaults: 256 new tokens, documents from loadgen/data/docs.txt (or --docs), length per --prompt-tokens.
Every prompt starts with a random tag, so resent documents are never served from a prefix cache.
"""

from locust import task

from loadgen.apis import Prompt
from loadgen.users import LLMUser
from loadgen.workloads import PROMPT_SHAPES, summarize_prompt


class BatchSummarizeUser(LLMUser):
    workload = "batch"
    default_max_new_tokens = 256
    default_source = PROMPT_SHAPES["batch"].default_source

    def next_prompt(self) -> Prompt:
        # a trace row's shared blocks and --dataset rows are whole prompts
        whole = self.trace_prompt() or self.dataset_prompt()
        if whole is not None:
            return whole
        docs = self.texts()
        doc = docs[self.rng.randrange(len(docs))]
        fitter = self.fitter()
        if fitter is not None:
            doc = fitter.fit(doc, docs)
        return self.fresh(summarize_prompt(doc))  # PROMPT_SHAPES["batch"].build

    @task
    def summarize(self) -> None:
        self.generate(self.next_prompt())
