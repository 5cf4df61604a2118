# Copyright (c) mmovl contributors. All rights reserved.
# CLIP's (OpenAI's) image statistics on the 0-255 scale. Every config whose
# student or teacher is a CLIP model normalises with these, so that the
# student and CLIPTeacher (whose mean / std are the same, 0-1 scale) see the
# same inputs.
clip_data_preprocessor = dict(
    mean=[122.770938, 116.7460125, 104.09373615],
    std=[68.5005327, 66.6321579, 70.32316305],
    to_rgb=True)
