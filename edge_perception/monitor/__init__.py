"""Deadline monitoring views (terminal, Qt widget) over a ROS-free board of /diagnostics."""
