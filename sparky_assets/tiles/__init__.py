"""Tilesets: autotile synthesis from an artist's template and the engine terrain exports."""
