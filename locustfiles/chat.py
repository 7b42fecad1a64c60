"""Interactive chat: short prompts, optionally multi-turn with the conversation history resent.

    locust -f locustfiles/chat.py --headless -u 16 -t 60s --api chat --csv out/chat

Defaults: 128 new tokens, prompts from loadgen/data/chat_prompts.jsonl (or --docs), --chat-turns 1.
"""

from locust import task

from loadgen.apis import Prompt
from loadgen.users import LLMUser
from loadgen.workloads import FOLLOW_UPS, PROMPT_SHAPES


class ChatUser(LLMUser):
    workload = "chat"
    default_max_new_tokens = 128
    default_source = PROMPT_SHAPES["chat"].default_source

    def on_start(self) -> None:
        self.history: list[dict[str, str]] = []
        self.follow_ups: list[str] = []

    def next_prompt(self) -> Prompt:
        turns_done = len(self.history) // 2
        if not self.history or turns_done >= self.settings.chat_turns:
            self.history = []
            from_trace = self.trace_prompt()  # a trace row's shared blocks are the whole prompt
            if from_trace is not None:
                self.follow_ups = []
                return [{"role": "user", "content": from_trace}]
            from_dataset = self.dataset_prompt()
            if from_dataset is not None:
                self.follow_ups = list(self.dataset_row.follow_ups) if self.dataset_row else []
                return [{"role": "user", "content": from_dataset}]
            prompts = self.texts()
            text = prompts[self.rng.randrange(len(prompts))]
            fitter = self.fitter()
            if fitter is not None:
                text = fitter.fit(text, prompts)
            text = self.fresh(text)  # later turns resend it: a conversation's own prefix may be cached
            self.history = []
        elif self.follow_ups:  # a dataset conversation's own next human turn
            text = self.follow_ups.pop(0)
        else:
            text = FOLLOW_UPS[self.rng.randrange(len(FOLLOW_UPS))]
        return [*self.history, {"role": "user", "content": text}]

    @task
    def converse(self) -> None:
        messages = self.next_prompt()
        assert isinstance(messages, list)
        multi_turn = self.settings.chat_turns > 1
        outcome = self.generate(messages, collect_text=multi_turn)
        if multi_turn and outcome.success:
            self.history = [*messages, {"role": "assistant", "content": outcome.text or ""}]
        else:
            self.history = []
