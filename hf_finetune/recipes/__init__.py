"""The recipes: a method's defaults and the story they tell, run by `hf-finetune spam|instruction|chat`
and by the scripts in the checkout's recipes/ folder (`accelerate launch recipes/spam.py`)."""
