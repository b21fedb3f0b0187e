extends Node2D
## The starter's main scene: the hero from the sparky-assets atlas, playing one clip.
##
## `sparky-assets build` writes res://sprites/hero.tres (a SpriteFrames whose frames are
## AtlasTextures on the page PNGs). Until the first build the scene says how to make it.
## While `sparky-assets watch` runs, the SparkyBridge autoload reloads the frames in place
## after every save; restarting the clip keeps it in step with a changed frame count.

const FRAMES_PATH := "res://sprites/hero.tres"
const CLIP := &"walk"

@onready var hero: AnimatedSprite2D = $Hero
@onready var hint: Label = $Hint


func _ready() -> void:
	if not ResourceLoader.exists(FRAMES_PATH):
		hint.text = "No sprites yet: run `sparky-assets build` in this folder."
		return
	hint.text = ""
	hero.sprite_frames = load(FRAMES_PATH)
	hero.play(CLIP)
	var bridge := get_node_or_null(^"/root/SparkyBridge")
	if bridge != null:
		bridge.assets_reloaded.connect(_on_assets_reloaded)


func _on_assets_reloaded(_paths: PackedStringArray) -> void:
	hero.play(CLIP)
