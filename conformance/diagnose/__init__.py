"""``adam-conformance diagnose``: which known Adam variant a target implements, point by point.

`examine` runs certify's preflight first, so that the probes pass only what the target
accepts; then each point's probe (`probes`): a small Case on which the choices at that
point part ways, run by the target and by the oracle under every choice there; the choice
the target follows, by a wide margin over the runner-up, is the finding. Probes run in
float64 where the target claims it, and in float32 only where float64 cannot tell; what
float64 saw is kept and named (`precision`: float32 arithmetic inside, a beta held in
float32). State precision and gradient handling are observed directly (`observed`). A probe
that raises is "could not probe", never "far". Parity comes from certify's report or a
quick parity check of diagnose's own (`certified`), and the verdict (`wording`) never calls
a target that fails it torch's at every point.
"""

from conformance.diagnose.certified import Certified, ReportError, from_report, quick_parity
from conformance.diagnose.diagnosis import Diagnosis, diagnose, examine
from conformance.diagnose.findings import CONVENTIONS, MARGIN, NEEDS, UNKNOWN, Finding
from conformance.diagnose.wording import FAMILIES, document, mismatch_lines, render, verdict

__all__ = ["CONVENTIONS", "FAMILIES", "MARGIN", "NEEDS", "UNKNOWN", "Certified", "Diagnosis", "Finding",
           "ReportError", "diagnose", "document", "examine", "mismatch_lines", "from_report", "quick_parity", "render",
           "verdict"]
