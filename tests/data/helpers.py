"""Small builders of COCO-format data sets in a temp folder (from the real samples)."""
import json
import os
import shutil


def copy_sample(src_dir, dst_dir, edit=None, layout='flat'):
  """Copies a sample folder (json + images); edit(json_dict) may change the json in place."""
  with open(os.path.join(src_dir, 'annotations.json')) as f:
    data = json.load(f)
  if edit:
    edit(data)
  img_dir = os.path.join(dst_dir, 'images') if layout == 'crowdpose' else str(dst_dir)
  os.makedirs(img_dir, exist_ok=True)
  for im in data['images']:
    src = os.path.join(src_dir, im['file_name'])
    if os.path.isfile(src):
      shutil.copy(src, os.path.join(img_dir, im['file_name']))
  if layout == 'crowdpose':
    os.makedirs(os.path.join(dst_dir, 'json'), exist_ok=True)
    ann = os.path.join(dst_dir, 'json', 'crowdpose_trainval.json')
  else:
    ann = os.path.join(dst_dir, 'annotations.json')
  with open(ann, 'w') as f:
    json.dump(data, f)
  return data
