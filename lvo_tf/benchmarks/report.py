"""Writes one benchmark section's results: OUTPUT_DIR/<section>.json and .md."""

import os

from absl import logging

from lvo_tf.benchmarks import timing
from lvo_tf.common import io_utils


def write_section(output_dir: str, section: str, result: dict, table: str, command: str) -> None:
    """`result` (with the machine added) as JSON and `table` as Markdown under
    the command that produced it, each written atomically; logs the table."""
    machine = timing.machine_description()
    io_utils.write_json(
        os.path.join(output_dir, f"{section}.json"),
        timing.to_jsonable({**result, "machine": machine}),
    )
    io_utils.write_text(
        os.path.join(output_dir, f"{section}.md"),
        f"Command: `{command}`\n\nMachine: {machine}\n\n{table}\n",
    )
    logging.info("%s:\n%s", section, table)
