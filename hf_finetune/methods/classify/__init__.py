"""The two classifier methods, side by side: head/ (a class head at the last real token) and
label_token/ (the LM writes a label word), with what they share: text/label data and its checks
(data.py), metrics and the report (report.py), calibration (calibration.py)."""
