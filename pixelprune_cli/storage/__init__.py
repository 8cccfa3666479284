"""Where what the user named is listed, opened, written and deleted: local disks and object stores."""
