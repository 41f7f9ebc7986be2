"""Chapter 12: multiple-choice tasks — what a question is, how it becomes a prompt, and the files it comes from.

Read in this order:
  1. ChoiceItem, Task           one question (a context, its choices, the right one) and a set of them
  2. letter_prompt, ...         how a question is written out for the model, as lm-evaluation-harness writes it
  3. readers                    HellaSwag JSONL, ARC JSONL, MMLU CSV, C-Eval CSV (and their download helpers)
  4. BUNDLED, load_task         the original sets shipped in data/eval, and one door to any of them

Two kinds of task (the names the common harnesses use):
  completion  the choices are continuations of the context (HellaSwag, ARC): the model scores each ending's
              log-likelihood given the context, and the likeliest ending is its answer
  letter      the choices are listed under the question with letters (MMLU, C-Eval): the model reads the whole
              list and its next-token logits for " A", " B", ... decide

What it does not do: no generation tasks (minigpt/metrics.py scores generated answers), no chain-of-thought prompts,
no task configuration files: a task is a Python object built by a reader.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

LETTERS = "ABCDEFGHIJ"


# ------------------------------------------------------------------------------------------ 1. items and tasks

@dataclass(frozen=True)
class ChoiceItem:
    """One multiple-choice question.

    query: completion tasks: the context the choices continue; letter tasks: the question alone
    choices: the endings (completion) or the options' texts without their letters (letter)
    answer: index of the right choice; None when the split has no public answers (such a split is refused
            for scoring)
    subject: the MMLU/C-Eval subject ("high_school_physics", "computer_network"), "" when there is none
    source: "file:line" of the item, for messages
    """
    query: str
    choices: tuple[str, ...]
    answer: int | None
    subject: str = ""
    source: str = ""


@dataclass
class Task:
    """A named set of items of one kind, with the dev items that k-shot prompts draw from (letter tasks).

    delimiter: what goes between the context and a choice (" " for every task here, as in the harness)
    answer_cue: the line that ends a letter prompt ("Answer:"; C-Eval's "答案：")
    description: a letter prompt's first line, with {subject} filled in (MMLU: "The following are multiple choice
                 questions (with answers) about {subject}.\\n\\n"); "" for none
    chance: the accuracy of guessing uniformly (mean of 1/len(choices) over the items)
    """
    name: str
    kind: Literal["completion", "letter"]
    items: list[ChoiceItem]
    shots: list[ChoiceItem] = field(default_factory=list)
    language: str = "en"
    delimiter: str = " "
    answer_cue: str = "Answer:"
    description: str = ""

    @property
    def chance(self) -> float:
        return sum(1 / len(item.choices) for item in self.items) / len(self.items) if self.items else 0.0


# ------------------------------------------------------------------------------------------ 2. prompts

def subject_name(subject: str) -> str:
    """ "high_school_physics" -> "high school physics", as the description line says it."""
    return subject.replace("_", " ")


def letter_block(item: ChoiceItem, task: Task, with_answer: bool = False) -> str:
    """The question, its lettered options and the answer cue; with the right letter after it for a shot:

        Which gas do plants take in?
        A. oxygen
        B. carbon dioxide
        Answer: B
    """
    lines = [item.query.strip()] + [f"{LETTERS[i]}. {text}" for i, text in enumerate(item.choices)]
    block = "\n".join(lines + [task.answer_cue])
    return block + task.delimiter + LETTERS[item.answer] if with_answer else block


def shot_text(item: ChoiceItem, task: Task) -> str:
    """One solved example for a k-shot prompt: a letter block with its answer, or a context and its ending."""
    if task.kind == "letter":
        return letter_block(item, task, with_answer=True)
    return item.query + task.delimiter + item.choices[item.answer]


def context_text(item: ChoiceItem, task: Task, shots: tuple[ChoiceItem, ...] | list[ChoiceItem] = ()) -> str:
    """Everything before the choice: the description, the solved shots (blank-line separated), the question."""
    head = task.description.format(subject=subject_name(item.subject)) if task.description else ""
    question = letter_block(item, task) if task.kind == "letter" else item.query
    return head + "\n\n".join([shot_text(s, task) for s in shots] + [question])


def continuations(item: ChoiceItem, task: Task) -> list[str]:
    """What is scored after the context: " A", " B", ... for a letter task, " " + each ending for a completion."""
    if task.kind == "letter":
        return [task.delimiter + LETTERS[i] for i in range(len(item.choices))]
    return [task.delimiter + choice for choice in item.choices]


def shots_for(item: ChoiceItem, task: Task, k: int) -> list[ChoiceItem]:
    """The first k dev items of the item's subject (all dev items when none share it), never the item itself.

    "First k" as the harness's default sampler for MMLU and C-Eval: the same shots for every question of a
    subject, so results do not depend on a random draw.
    """
    if k <= 0 or not task.shots:
        return []
    same = [s for s in task.shots if s.subject == item.subject and s != item]
    pool = same or [s for s in task.shots if s != item]
    return pool[:k]
