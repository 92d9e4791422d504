"""Plain-language explanations of the metrics on a report page, and their limits (issue 5).

Restated from the contract, shared/METRICS.md (§2–§8), for clinicians rather than engineers:
what each number counts, what it is a proxy for, and what voice activity cannot see. The
report page shows them next to the figures; docs/metrics.md has the precise definitions.
"""

from __future__ import annotations

from services.reports.html import esc

GENERAL = (
    "These numbers come from voice activity alone — when each person's microphone carried "
    "speech — never from what was said. They are proxies for active listening and for the "
    "balance of the conversation, not clinical judgements: a long silence can be "
    "therapeutic, a long monologue can be a needed explanation. Every threshold (pause "
    "lengths, alert levels) is a research-based default that each clinic should calibrate "
    "to its own practice (METRICS.md §8); none is a validated clinical cut-off."
)

# (title, what it is, limits) in the order of the report page; METRICS.md sections cited.
METRICS: tuple[tuple[str, str, str], ...] = (
    ("Talk time and talk share (§6)",
     "How long each role spoke (short 'mm-hm' responses included) and its share of all "
     "speech; silence is left out of the share. A proxy for how much space the client is "
     "given.",
     "Says nothing about what was said. In group sessions all clients are summed into one "
     "role. The 65 % therapist-share alert is a sales-coaching default, not a clinical "
     "norm."),
    ("Balance index (§6)",
     "1 when both roles speak equally, 0 when one voice holds all the talk "
     "(1 − |2 × therapist share − 1|; with more roles, the normalized entropy of shares).",
     "Balance is not always the goal: an intake interview or a psycho-education segment is "
     "rightly therapist-heavy."),
    ("Turns, mean turn and longest monologue (§4)",
     "A turn runs from a person's first word after the floor changes hands to their last "
     "before it changes again; a monologue is a turn cut at every mutual silence of 3 s or "
     "more (default). Long client monologues can mean narrative space; long therapist ones "
     "can mean lecturing.",
     "Speech pauses under 200 ms are bridged and sounds under 100 ms dropped (defaults), so "
     "very short utterances are not counted."),
    ("Backchannels (§3)",
     "Short responses of 1 s or less ('mm-hm', 'yeah') spoken inside the other person's "
     "speech, per minute of the partner's talk: a proxy for active listening.",
     "Non-verbal listening (nodding, facial expression) is invisible to voice activity; a "
     "muted listener is not counted as silent."),
    ("Response latency (§4)",
     "Time from one person stopping to the other starting at each change of speaker "
     "(negative when they start in overlap): median and 90th percentile. The corrected "
     "value subtracts the responder's network round trip, since over video each reply "
     "reaches the other side late (about 135 ms face to face vs 487 ms over video, Boland "
     "et al. 2022).",
     "When the round trip is unknown the correction is 0. With poor network quality "
     "(RTT p95 over 300 ms) latency figures are marked low confidence."),
    ("Interruptions (§5)",
     "Someone starting to speak while the other held the floor for at least 0.5 s, with at "
     "least 0.5 s of overlap: successful when the interrupter keeps the floor, unsuccessful "
     "when the first speaker continues. Asymmetry runs from −1 (only the client interrupts) "
     "to +1 (only the therapist does).",
     "Talk-over caused by network delay is counted apart as a collision, never as an "
     "interruption. Silent interruptions (taking the floor in a pause before the speaker "
     "has finished) need the words, which Rapport never has. Not every interruption is "
     "rude: supportive overlaps are common."),
    ("Overlap, silence and lapses (§6)",
     "Overlap is time with two or more people speaking. Silence is time when nobody speaks; "
     "a lapse is a mutual silence of 3 s or more between two utterances (Levitt's pause "
     "coding), with who spoke before and who broke it.",
     "Silence can be reflective and therapeutic; the long-silence alert (30 s) is "
     "informational only."),
    ("Quality and confidence (§6)",
     "How far to trust the numbers: the share of the session each participant's voice "
     "activity was received, muted time, network round trip (p95) and packet loss.",
     "Gaps in coverage (a dropped connection, a muted microphone) make every figure less "
     "reliable; low-confidence figures are flagged."),
    ("Alerts (§7)",
     "Live signals raised during the session, each once per episode and cleared when the "
     "condition ends: therapist dominance (over 65 % of talk in the last 10 min), "
     "interruption bursts (3 successful therapist interruptions in 5 min), long monologues "
     "(over 120 s), long silences (over 30 s) and degraded networks.",
     "Alerts are prompts for reflection, not findings; every rule is configurable and can "
     "be switched off per clinic."),
)


def explanations_html() -> str:
    """The explanation section of the report page."""
    items = "".join(f"<dt>{esc(title)}</dt><dd>{esc(what)} <span class=\"muted\">Limits: "
                    f"{esc(limits)}</span></dd>" for title, what, limits in METRICS)
    return (f'<p class="note">{esc(GENERAL)}</p><dl class="explain">{items}</dl>')
