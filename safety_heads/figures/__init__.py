"""What you see: head maps and ASR plots (:mod:`.plots`), map comparisons
(:mod:`.compare`), attention views (:mod:`.attention`) and the HTML report
(:mod:`.report`).
"""
