"""Class lists shared by the generator, the models, post-processing and the messages."""

# Index = TrafficLight.msg state constant (OFF=0, RED=1, YELLOW=2, GREEN=3).
LIGHT_STATES = ('off', 'red', 'yellow', 'green')
# The detector's heatmap channels: the four light states, then one class-agnostic sign channel.
DETECTOR_CLASSES = (*LIGHT_STATES, 'sign')
SIGN_CHANNEL = DETECTOR_CLASSES.index('sign')
SIGN_CLASSES = (
    'stop', 'yield', 'no_entry', 'speed_20', 'speed_50', 'speed_80', 'turn_left', 'turn_right',
)
