"""Keypoint sets: joint names, flip index, skeleton, OKS sigmas and grouping order.

Every stage that cares about joint semantics (targets, flip augmentation, decoding, evaluation,
drawing, the export sidecar) reads them from here so that they cannot drift apart.
"""
from __future__ import annotations

from collections.abc import Sequence
import dataclasses

from litepose_jax.errors import UserError

# The official grouping visits joint types in this order (official lib/core/group.py,
# HeatmapParser.match_by_tag, joint_order): for COCO the face, shoulders and hips first, then
# elbows, wrists, knees, ankles. Other joint sets get it cut to their joint count, whatever their
# joints mean (see default_group_order).
COCO_GROUP_ORDER = (0, 1, 2, 3, 4, 5, 6, 11, 12, 7, 8, 9, 10, 13, 14, 15, 16)


def default_group_order(num_joints: int) -> tuple[int, ...]:
  """The official grouping order for J joints: the COCO order cut to its first J entries.

  The official code cuts it so for any joint count, CrowdPose's 14 included (docs/OFFICIAL.md,
  "Inference and grouping"); a cut that is not a permutation of 0..J-1 has no default.
  """
  order = COCO_GROUP_ORDER[:num_joints]
  if len(order) != num_joints or sorted(order) != list(range(num_joints)):
    raise ValueError(f'no default grouping order for {num_joints} joints; pass joint_order')
  return order


@dataclasses.dataclass(frozen=True)
class JointSet:
  """A keypoint convention; all indices are 0-based into `names`."""
  name: str
  names: tuple[str, ...]
  flip_index: tuple[int, ...]
  skeleton: tuple[tuple[int, int], ...]
  sigmas: tuple[float, ...]
  # Order in which the grouping visits joint types (see `default_group_order`).
  group_order: tuple[int, ...]

  @property
  def num_joints(self) -> int:
    return len(self.names)

  def side(self, j: int) -> str:
    """'left', 'right' or 'center' for joint j (used for drawing colours)."""
    n = self.names[j]
    return 'left' if n.startswith('left') else 'right' if n.startswith('right') else 'center'

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)


CROWDPOSE = JointSet(
    name='crowdpose',
    names=('left_shoulder', 'right_shoulder', 'left_elbow', 'right_elbow', 'left_wrist',
           'right_wrist', 'left_hip', 'right_hip', 'left_knee', 'right_knee', 'left_ankle',
           'right_ankle', 'head', 'neck'),
    flip_index=(1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 12, 13),
    skeleton=((12, 13), (13, 0), (13, 1), (0, 2), (2, 4), (1, 3), (3, 5), (13, 6), (13, 7),
              (6, 8), (8, 10), (7, 9), (9, 11)),
    sigmas=tuple(s / 10.0 for s in (.79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89,
                                    .79, .79)),
    # The COCO visiting order cut to 14 entries, as the official code does for CrowdPose.
    group_order=default_group_order(14),
)

COCO = JointSet(
    name='coco',
    names=('nose', 'left_eye', 'right_eye', 'left_ear', 'right_ear', 'left_shoulder',
           'right_shoulder', 'left_elbow', 'right_elbow', 'left_wrist', 'right_wrist', 'left_hip',
           'right_hip', 'left_knee', 'right_knee', 'left_ankle', 'right_ankle'),
    flip_index=(0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15),
    skeleton=((15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
              (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6)),
    sigmas=tuple(s / 10.0 for s in (.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07,
                                    1.07, .87, .87, .89, .89)),
    group_order=default_group_order(17),
)

JOINT_SETS = {'crowdpose': CROWDPOSE, 'coco': COCO}


def get_joint_set(name_or_num: str | int) -> JointSet:
  """Looks up a joint set by name ('crowdpose', 'coco') or joint count (14, 17)."""
  if isinstance(name_or_num, int):
    for js in JOINT_SETS.values():
      if js.num_joints == name_or_num:
        return js
    raise UserError(f'no built-in joint set has {name_or_num} joints '
                    f'(known: {", ".join(f"{k}={v.num_joints}" for k, v in JOINT_SETS.items())})')
  key = str(name_or_num).lower()
  if key not in JOINT_SETS:
    raise UserError(f'unknown joint set {name_or_num!r}; choose one of {sorted(JOINT_SETS)}')
  return JOINT_SETS[key]


def custom_joint_set(names: Sequence[str], flip_index: Sequence[int],
                     skeleton: Sequence[Sequence[int]] = (), sigmas: Sequence[float] | None = None,
                     name: str = 'custom') -> JointSet:
  """Builds a validated JointSet for a custom COCO-format data set (0-based skeleton)."""
  j = len(names)
  if sorted(flip_index) != list(range(j)):
    raise UserError(f'flip_index must be a permutation of 0..{j - 1}, got {list(flip_index)}')
  for a, b in skeleton:
    if not (0 <= a < j and 0 <= b < j):
      raise UserError(f'skeleton edge ({a}, {b}) is outside 0..{j - 1}')
  sig = tuple(sigmas) if sigmas is not None else (0.089,) * j
  if len(sig) != j:
    raise UserError(f'sigmas has {len(sig)} entries for {j} joints')
  return JointSet(name, tuple(names), tuple(flip_index), tuple(tuple(e) for e in skeleton), sig,
                  tuple(range(j)))
