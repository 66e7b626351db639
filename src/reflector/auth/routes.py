from __future__ import annotations

from fastapi import APIRouter

from reflector.auth.dependencies import CurrentUser
from reflector.auth.schemas import UserOut

router = APIRouter(prefix="/v1", tags=["auth"])


@router.get("/me", response_model=UserOut, summary="The user the API token belongs to")
async def me(user: CurrentUser) -> UserOut:
    return UserOut.model_validate(user)
