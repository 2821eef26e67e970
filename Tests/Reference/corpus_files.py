"""Writing a hostile-input corpus: shared by the *_corpus.py scripts."""
import os


def write_cases(out, cases, stale_suffix=None):
    """Writes each name → bytes of `cases` into the folder `out` (created if needed). With
    `stale_suffix`, files of that suffix that are not cases are removed first (a renamed case
    leaves no orphan); other files (hand-made regressions) are kept."""
    os.makedirs(out, exist_ok=True)
    if stale_suffix:
        for name in os.listdir(out):
            if name.endswith(stale_suffix) and name not in cases:
                os.remove(os.path.join(out, name))
    for name, data in cases.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    print(f"wrote {len(cases)} files to {os.path.normpath(out)}")
