"""Planning the inputs (folders, image files, Parquet tables) and reading one image of them."""
