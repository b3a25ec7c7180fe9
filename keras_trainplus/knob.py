"""placeholder"""
class Knob: pass
